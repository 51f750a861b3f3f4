"""scsa.integrations.ultralytics: YAML layers at two scales, surgery, offline training, reloading."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("ultralytics") is None:  # not importorskip: scsa must configure it first
    pytest.skip("needs the yolo extra (ultralytics)", allow_module_level=True)
pytestmark = pytest.mark.yolo

from ultralytics import YOLO  # noqa: E402
from ultralytics.nn import tasks  # noqa: E402

import scsa.integrations.ultralytics as su  # noqa: E402
from scsa.attention import list_attentions  # noqa: E402


def _parse(rows, width=1.0, max_channels=1024):
    d = {"nc": 1, "scales": {"n": [1.0, width, max_channels]}, "scale": "n", "backbone": rows, "head": []}
    return tasks.parse_model(d, ch=3, verbose=False)[0]


def _det(name):
    return tasks.DetectionModel(str(su.model_yaml(name)), verbose=False)


def _attn_channels(det):
    return [m.channels for m in det.model if isinstance(m, su.ZooLayer)]


# ------------------------------------------------------------------------------------------- YAML layers
def test_every_zoo_block_has_a_yaml_name():
    names = su.yaml_names()
    assert set(names.values()) == set(list_attentions()) - {"none"}
    for name in ("SCSA", "SE", "CBAM", "ECA", "CA", "EMA", "CoordAttention", "C2SCSA"):
        assert getattr(tasks, name) is (su.C2SCSA if name == "C2SCSA" else su.layer_class(names[name]))
    assert su.register() == su.register()  # idempotent


@pytest.mark.parametrize("name", sorted(su.yaml_names()))
def test_each_layer_takes_its_channels_from_the_previous_row(name):
    layers = _parse([[-1, 1, "Conv", [64, 3, 2]], [-1, 1, name, []], [-1, 1, "Conv", [32, 1, 1]]], width=0.5)
    assert layers[1].channels == 32 and layers[1].attn is not None
    x = torch.randn(2, 3, 32, 32)
    y = layers[1](layers[0](x))
    assert y.shape == (2, 32, 16, 16)


def test_yaml_row_arguments():
    layers = _parse([[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "SCSA", [64, {"head_num": 2}]]], width=1.0)
    assert layers[1].kwargs == {"head_num": 2}
    with pytest.raises(ValueError, match=r"scale to 32 at width 0\.5, but its input has 16"):
        _parse([[-1, 1, "Conv", [32, 3, 2]], [-1, 1, "SCSA", [64]]], width=0.5)
    with pytest.raises(ValueError, match="not understood"):
        _parse([[-1, 1, "Conv", [32, 3, 2]], [-1, 1, "SCSA", [{"head_num": 2}, 3]]])
    repeated = _parse([[-1, 1, "Conv", [64, 3, 2]], [-1, 2, "ECA", []]], width=0.5)[1]  # built in a genexpr
    assert [m.channels for m in repeated] == [32, 32]
    assert su.layer_class("scsa")(64).channels == 64  # from Python: channels first
    with pytest.raises(TypeError, match="channels must be an int"):
        su.layer_class("scsa")()


@pytest.mark.parametrize(("scale", "attn", "c2"), [("n", [128, 128, 256], 256), ("s", [256, 256, 512], 512)])
def test_shipped_yamls_build_at_two_scales(scale, attn, c2):
    det = _det(f"yolo11{scale}-scsa")
    assert _attn_channels(det) == attn
    assert det.model[-1].f == [19, 22, 25]
    c2m = _det(f"yolo11{scale}-c2scsa").model[10]
    assert isinstance(c2m, su.C2SCSA) and isinstance(c2m, tasks.C2PSA)
    assert c2m.cv1.conv.in_channels == c2 and len(c2m.m) == 1  # C2PSA's depth: 2 x 0.5
    assert c2m.m[0].attn.channels == c2 // 2 and c2m.m[0].attn.zoo_name == "scsa"
    x = torch.zeros(1, 3, 64, 64)
    det.eval()(x)


def test_shipped_files_are_what_the_generator_writes():
    files = {p.stem for p in su.list_model_yamls()}
    assert files == set(su.SHIPPED)
    for name in su.SHIPPED:
        assert su.model_yaml(name).read_text() == su.shipped_yaml_text(name), name
    assert _attn_channels(_det("yolov8n-scsa")) == [64, 128, 256]
    with pytest.raises(ValueError, match="no shipped model YAML"):
        su.model_yaml("yolo11n-nope")


# ------------------------------------------------------------------------------------------- surgery
def _shapes(det):
    return {k: tuple(v.shape) for k, v in det.state_dict().items()}


def test_surgery_keeps_the_old_layers_and_matches_the_shipped_yaml(tmp_path):
    yolo = YOLO("yolo11n.yaml", task="detect", verbose=False)
    old = {k: v.clone() for k, v in yolo.model.state_dict().items()}
    new_idx = su.insert_attention(yolo, "scsa", where="backbone")
    det = yolo.model
    assert new_idx == [5, 8, 13] and _attn_channels(det) == [128, 128, 256]
    shift = [i + sum(p < i for p in (4, 6, 10)) for i in range(24)]
    new = det.state_dict()
    for key, value in old.items():
        _, i, rest = key.split(".", 2)
        assert torch.equal(new[f"model.{shift[int(i)]}.{rest}"], value), key
    assert det.save == sorted(det.save) and 8 in det.save and 5 in det.save
    # the YAML it rewrote builds the same model, and it is the shipped yolo11-scsa.yaml
    assert _shapes(tasks.DetectionModel(det.yaml, verbose=False)) == _shapes(det)
    shipped = _det("yolo11n-scsa")
    assert _shapes(shipped) == _shapes(det)
    det.eval()(torch.zeros(1, 3, 64, 64))
    yolo.save(tmp_path / "s.pt")
    again = YOLO(str(tmp_path / "s.pt"))
    assert _shapes(again.model) == _shapes(det)


def test_surgery_in_place_of_c2psa_attention_and_at_the_neck():
    yolo = YOLO("yolo11n.yaml", task="detect", verbose=False)
    old = {k: v.clone() for k, v in yolo.model.state_dict().items()}
    assert su.insert_attention(yolo, "cbam", where="c2psa") == [10]
    layer = yolo.model.model[10]
    assert isinstance(layer, su.C2SCSA) and layer.m[0].attn.zoo_name == "cbam"
    new = yolo.model.state_dict()
    kept = [k for k in old if ".attn." not in k]
    assert all(torch.equal(new[k], old[k]) for k in kept)
    assert not any(k.startswith("model.10.m.0.attn.qkv") for k in new)  # ultralytics' attention is gone
    assert yolo.model.yaml["backbone"][10][2:] == ["C2SCSA", [1024, {"attention": "cbam"}]]
    assert _shapes(tasks.DetectionModel(yolo.model.yaml, verbose=False)) == _shapes(yolo.model)

    v8 = YOLO("yolov8n.yaml", task="detect", verbose=False)
    assert su.insert_attention(v8, "eca", where="neck") == [16, 20, 24]
    assert v8.model.model[-1].f == [16, 20, 24]
    with pytest.raises(ValueError, match="no C2PSA"):
        su.insert_attention(v8, "scsa", where="c2psa")
    with pytest.raises(ValueError, match="where must be one of"):
        su.insert_attention(v8, "scsa", where="head")


# ------------------------------------------------------------------------------------------- offline training
_HIDE_SCSA = """
import importlib.abc, subprocess, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "scsa" or name.startswith("scsa."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
calls = []
import ultralytics.nn.tasks as T, ultralytics.utils.checks as C
def spy(*a, **k):
    calls.append(a)
    return False
C.check_requirements = T.check_requirements = spy
subprocess.check_output = subprocess.run = lambda *a, **k: calls.append(("subprocess", a))
from ultralytics import YOLO
try:
    YOLO(sys.argv[1])
    print("LOADED")
except Exception as e:
    print("ERROR", type(e).__name__, e)
print("CALLS", calls)
"""

_RELOAD = """
import socket, sys
attempts = []
def refuse(*a, **k):
    attempts.append(a)
    raise OSError("network disabled")
socket.create_connection = socket.getaddrinfo = refuse
socket.socket.connect = lambda self, *a: refuse(*a)
import scsa.integrations.ultralytics
from ultralytics import YOLO
r = YOLO(sys.argv[1]).predict(sys.argv[2], imgsz=64, conf=0.0, verbose=False)
print("BOXES", len(r[0].boxes), "ATTEMPTS", attempts)
"""


def _subprocess_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    bogus = "http://127.0.0.1:9"
    env.update({"HTTP_PROXY": bogus, "HTTPS_PROXY": bogus, "ALL_PROXY": bogus, "NO_PROXY": ""})
    env.update({"YOLO_CONFIG_DIR": str(tmp_path / "cfg"), "YOLO_OFFLINE": "1"})
    return env


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """yolo11n-scsa trained for one epoch at 64 px on 8 mnistdet images, with the network unreachable."""
    from scsa.tasks.detection.data import export_mnistdet

    tmp = tmp_path_factory.mktemp("yolo")
    data = export_mnistdet(tmp / "data", fmt="yolo", image_size=96, n_train=8, n_val=4)
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append((args, "".join(traceback.format_stack(limit=12))))
        raise OSError("network disabled in this test")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket, "getaddrinfo", refuse)
    mp.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    try:
        yolo = YOLO(str(su.model_yaml("yolo11n-scsa")), task="detect")
        args = su.offline_train_args(
            data=str(data), epochs=1, imgsz=64, batch=4, workers=0, seed=0, plots=True
        )
        yolo.train(**args, project=str(tmp / "runs"), name="t", exist_ok=True, verbose=False)
    finally:
        mp.undo()
    return {"best": Path(yolo.trainer.best), "data": data, "attempts": attempts, "tmp": tmp}


@pytest.mark.slow
def test_trains_offline_on_cpu(trained):
    assert trained["best"].is_file()
    assert trained["attempts"] == []  # no font, weight, AMP-check, hub or update download was tried
    assert (trained["best"].parent.parent / "results.csv").is_file()


@pytest.mark.slow
def test_best_pt_reloads_and_predicts_in_a_fresh_process(trained, tmp_path):
    image = next((Path(trained["data"]).parent / "images" / "val").glob("*.png"))
    proc = subprocess.run(
        [sys.executable, "-c", _RELOAD, str(trained["best"]), str(image)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_subprocess_env(tmp_path),
    )
    assert "BOXES" in proc.stdout and "ATTEMPTS []" in proc.stdout, proc.stdout + proc.stderr[-3000:]


@pytest.mark.slow
def test_without_scsa_ultralytics_does_not_pip_install_it(trained, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _HIDE_SCSA, str(trained["best"])],
        capture_output=True,
        text=True,
        timeout=300,
        env=_subprocess_env(tmp_path),
    )
    assert "CALLS []" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "ERROR AttributeError" in proc.stdout and "SCSA" in proc.stdout, proc.stdout
