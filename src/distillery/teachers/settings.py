"""The teacher jobs' settings of the config's `teachers:` section (weights_cache, device, precision,
batch_size) and their defaults, in one place.

The workflow fills each of them a config leaves out from these constants
(distillery.workflow.defaults), and `distillery teach` takes its --weights-cache,
--precision and --batch-size defaults from them, so a hand-run command and the
workflow's jobs agree. `distillery teach --device` alone defaults to the CPU
(`Runtime`), where a hand run works on any machine; the workflow runs real
teachers on `teachers.device`, a GPU unless the config says otherwise.
A module of its own, importing nothing, so the workflow and the student's
encoder weights (which share the weights cache) read it without loading a teacher.
"""

WEIGHTS_CACHE = "weights"  # folder of hub weights: teachers' hf://... and the student encoders' ImageNet weights
DEVICE = "cuda"  # device of the workflow's real teacher jobs (simulated teachers run on the CPU)
PRECISION = "bf16"  # autocast precision on CUDA
BATCH_SIZE = 8  # frames per batch (a teacher's own batch_size overrides it)
