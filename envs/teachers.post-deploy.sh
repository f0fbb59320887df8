#!/usr/bin/env bash
# Run by Snakemake after it creates the teachers environment (see envs/teachers.yaml).
# Versions are kept in step with the Makefile's setup target.
set -euo pipefail
SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0
pip install --no-deps depth-anything-3==0.1.1
