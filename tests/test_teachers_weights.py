"""Weights: config specs resolve to local files, missing ones are named, and checkpoints load."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_teachers_models import DA3_TINY, frames

from distillery.teachers import Runtime, TeacherError, build_teacher
from distillery.teachers.weights import MissingWeights, check_present, parse_hub, resolve, weight_files


def test_hub_ids_and_local_paths_resolve_into_the_cache(tmp_path):
    assert parse_hub("hf://depth-anything/DA3METRIC-LARGE") == ("depth-anything/DA3METRIC-LARGE", None)
    assert parse_hub("hf://facebook/sam2.1-hiera-large/sam2.1_hiera_large.pt")[1] == "sam2.1_hiera_large.pt"
    files = weight_files("da3", "hf://depth-anything/DA3METRIC-LARGE", tmp_path)
    assert [(f.path, f.repo, f.filename) for f in files] == [
        (tmp_path / "depth-anything/DA3METRIC-LARGE/model.safetensors", "depth-anything/DA3METRIC-LARGE",
         "model.safetensors")]
    assert [f.path for f in weight_files("da2", "/m/DA2-L", tmp_path)] == [Path("/m/DA2-L/config.json"),
                                                                           Path("/m/DA2-L/model.safetensors")]
    assert [f.path for f in weight_files("yolo", "/m/yolov8l.pt", tmp_path)] == [Path("/m/yolov8l.pt")]
    assert weight_files("sim_da3", None, tmp_path) == [] and weight_files("da3", "random", tmp_path) == []
    assert resolve("sam2", "hf://facebook/sam2.1-hiera-large/sam2.1_hiera_large.pt", "/c") == \
        "/c/facebook/sam2.1-hiera-large/sam2.1_hiera_large.pt"
    with pytest.raises(ValueError, match="one checkpoint file"):
        weight_files("yolo", "hf://Ultralytics/YOLOv8", tmp_path)


def test_missing_weights_are_named_with_how_to_get_them(tmp_path):
    with pytest.raises(MissingWeights, match=r"/nowhere/yolov8l.pt: copy the file there"):
        check_present("yolo", str(tmp_path / "nowhere/yolov8l.pt"), tmp_path)
    with pytest.raises(MissingWeights, match=r"DA3METRIC-LARGE/model.safetensors: download it.*download_weights"):
        check_present("da3", "hf://depth-anything/DA3METRIC-LARGE", tmp_path)
    check_present("da3", "hf://depth-anything/DA3METRIC-LARGE", tmp_path, include_hub=False)  # the rule fetches it


def test_da3_loads_a_hub_snapshot_and_refuses_one_of_another_model(tmp_path):
    from safetensors.torch import save_file

    source = build_teacher(DA3_TINY, Runtime("cpu"))
    folder = tmp_path / "DA3METRIC-TINY"
    folder.mkdir()
    save_file({f"model.{k}": v.contiguous() for k, v in source.net.state_dict().items()},
              str(folder / "model.safetensors"))  # the package's wrapper module prefixes "model."
    loaded = build_teacher(dict(DA3_TINY, weights=str(folder)), Runtime("cpu"))
    batch = frames(1)
    assert np.array_equal(source.predict(batch)[0]["teacher_depth"], loaded.predict(batch)[0]["teacher_depth"])
    (folder / "config.json").write_text(json.dumps({"model_name": "da3-giant"}))
    with pytest.raises(TeacherError, match="weights of 'da3-giant'"):
        build_teacher(dict(DA3_TINY, weights=str(folder)), Runtime("cpu"))


def test_sam2_and_yolo_load_their_checkpoint_files(tmp_path):
    sam_cfg = {"backend": "sam2", "model_cfg": "configs/sam2.1/sam2.1_hiera_t.yaml", "image_size": 512}
    source = build_teacher(dict(sam_cfg, weights="random"), Runtime("cpu"))
    torch.save({"model": source.model.state_dict()}, tmp_path / "sam.pt")
    loaded = build_teacher(dict(sam_cfg, weights=str(tmp_path / "sam.pt")), Runtime("cpu"))
    key = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    assert torch.equal(source.model.state_dict()[key], loaded.model.state_dict()[key])
    from distillery.teachers.detect_yolo import import_ultralytics

    yolo = import_ultralytics().YOLO("yolov8n.yaml")
    yolo.model.names = {i: str(i) for i in range(80)}  # not COCO: must be refused when loaded
    yolo.save(str(tmp_path / "y.pt"))
    with pytest.raises(TeacherError, match="not a COCO-80 detector"):
        build_teacher({"backend": "yolo", "weights": str(tmp_path / "y.pt")}, Runtime("cpu"))
