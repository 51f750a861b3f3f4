"""Loading weights into the backbones: our checkpoints, torchvision's, and the released MMPretrain ones.

SCSA: Si et al., https://arxiv.org/abs/2407.05128. The authors released ``ResNetSCSA`` and
``MobileNetV2SCSA`` checkpoints trained with their MMPretrain fork; :func:`convert_mmpretrain` maps
their mmcv-style names onto ours.

Every file is read with ``torch.load(weights_only=True)`` (or safetensors); nothing is downloaded.
Loading is strict with two explained exceptions: the attention part may be absent from the
checkpoint altogether (a plain torchvision ResNet into an SCSA-ResNet: those keys stay new, and the
report lists them), and a classifier of another size is skipped (fine-tuning on another number of
classes, or ``num_classes=0``). Anything else that does not fit is a ``ValueError`` listing the
missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from scsa.models._common import find_attention_modules
from scsa.models.mobilenetv2 import upgrade_state_dict

__all__ = [
    "LoadReport",
    "convert_mmpretrain",
    "load_checkpoint",
    "load_mmpretrain_weights",
    "load_torchvision_weights",
    "read_checkpoint",
]

# containers that training frameworks wrap a state dict in, tried in this order
_CONTAINER_KEYS = ("state_dict", "model", "module")
# prefixes that wrappers add to every key: DDP/DataParallel, torch.compile, a LightningModule's `model`
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")
_LIST_LIMIT = 25

StateDict = dict[str, torch.Tensor]


@dataclass
class LoadReport:
    """What a load did.

    ``loaded``: keys copied from the checkpoint. ``new``: model keys the checkpoint did not provide
    (they keep their initialisation); ``new_modules``: the outermost modules made only of those.
    ``skipped``: checkpoint keys left out on purpose (excluded, or a classifier of another size).
    """

    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    new_modules: list[str] = field(default_factory=list)

    def summary(self) -> str:
        shown = ", ".join(self.new_modules[:4]) + (", ..." if len(self.new_modules) > 4 else "")
        where = f" in {len(self.new_modules)} modules ({shown})" if self.new_modules else ""
        return f"{len(self.loaded)} loaded, {len(self.new)} new{where}, {len(self.skipped)} skipped"


def _outermost_modules(model: nn.Module, keys: Sequence[str]) -> list[str]:
    """The outermost submodules all of whose state-dict keys are in ``keys``."""
    own = list(model.state_dict())
    chosen = set(keys)
    out: list[str] = []
    for path, _ in model.named_modules():
        if not path or any(path.startswith(p + ".") for p in out):
            continue
        inside = [k for k in own if k.startswith(path + ".")]
        if inside and all(k in chosen for k in inside):
            out.append(path)
    return out


def _listing(title: str, keys: Sequence[str]) -> str:
    more = f"\n    ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else ""
    return f"  {title} ({len(keys)}):\n    " + "\n    ".join(keys[:_LIST_LIMIT]) + more


def _unwrap(obj: object, where: str) -> StateDict:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = dict(obj)
    else:
        inner = None
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            keys = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(
                f"{where} holds no state dict: expected a mapping of tensors, or one under "
                f"{_CONTAINER_KEYS}; found {keys}"
            )
        state = {k: v for k, v in inner.items() if isinstance(v, torch.Tensor)}
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def read_checkpoint(path: str | os.PathLike) -> StateDict:
    """The state dict of a checkpoint file (``torch.load(weights_only=True)`` or safetensors, on CPU).

    Unwraps ``state_dict``/``model``/``module`` containers (Lightning, MMPretrain, timm, DeiT) and
    strips ``module.``/``_orig_mod.``/``model.`` prefixes that every key shares.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist or is not a file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file  # a timm dependency

        return _unwrap(load_file(path, device="cpu"), f"checkpoint {path!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"checkpoint {path!r} holds Python objects that torch.load(weights_only=True) refuses to unpickle "
            f"(MMPretrain files keep their config in 'meta'). If you trust the file, save its weights alone: "
            f"torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pth'). Details: {err}"
        ) from err
    return _unwrap(obj, f"checkpoint {path!r}")


def _as_state_dict(source: str | os.PathLike | Mapping[str, torch.Tensor] | nn.Module) -> StateDict:
    if isinstance(source, nn.Module):
        return dict(source.state_dict())
    if isinstance(source, (str, os.PathLike)):
        return read_checkpoint(source)
    if isinstance(source, Mapping):
        return _unwrap(source, "the given mapping")
    raise ValueError(f"expected a path, a state dict or an nn.Module, got {type(source).__name__}")


def _classifier_prefix(model: nn.Module) -> str | None:
    get = getattr(model, "get_classifier", None)
    if get is None:
        return None
    head = get()
    return next((name + "." for name, m in model.named_modules() if m is head and name), None)


def _load_checked(
    model: nn.Module, state: Mapping[str, torch.Tensor], exclude: Sequence[str] = (), what: str = "checkpoint"
) -> LoadReport:
    """Load ``state`` into ``model`` under the module's rules (see the module docstring)."""
    exclude = tuple(exclude)
    # MobileNetV2 files of the earlier layout (attention inside `conv`): their keys under today's names
    state = upgrade_state_dict(model, state)
    own = model.state_dict()
    skipped = sorted(k for k in state if k.startswith(exclude)) if exclude else []
    state = {k: v for k, v in state.items() if k not in set(skipped)}

    fresh = exclude  # model key prefixes that may stay new
    head = _classifier_prefix(model)
    if head is not None and any(
        k.startswith(head) and (k not in own or state[k].shape != own[k].shape) for k in state
    ):  # a classifier for another number of classes (or none at all): keep ours
        skipped += sorted(k for k in state if k.startswith(head))
        state = {k: v for k, v in state.items() if not k.startswith(head)}
        fresh = (*exclude, head)

    attn_prefixes = tuple(p + "." for p in find_attention_modules(model))
    source_has_attention = bool(attn_prefixes) and any(k.startswith(attn_prefixes) for k in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(
        f"{k}: {tuple(state[k].shape)} in the {what}, {tuple(own[k].shape)} in the model"
        for k in state
        if k in own and state[k].shape != own[k].shape
    )
    missing = sorted(k for k in own if k not in state)

    def allowed(key: str) -> bool:
        return (
            key.startswith(fresh)
            or (not source_has_attention and bool(attn_prefixes) and key.startswith(attn_prefixes))
            or key.endswith(".num_batches_tracked")  # absent from old torchvision files; BN fills it
        )

    bad_missing = [k for k in missing if not allowed(k)]
    if unexpected or mismatched or bad_missing:
        parts = [f"the {what} does not fit {type(model).__name__}:"]
        if bad_missing:
            parts.append(_listing("missing from the " + what, bad_missing))
        if unexpected:
            parts.append(_listing("unexpected (not in the model)", unexpected))
        if mismatched:
            parts.append(_listing("shape mismatch", mismatched))
        raise ValueError("\n".join(parts))
    model.load_state_dict(state, strict=False)
    new_modules = _outermost_modules(model, missing) if missing else []
    return LoadReport(loaded=sorted(state), new=missing, skipped=sorted(skipped), new_modules=new_modules)


def load_torchvision_weights(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor] | nn.Module,
    exclude: Sequence[str] = (),
) -> LoadReport:
    """Load torchvision ResNet/ResNeXt/MobileNetV2 weights into the non-attention part of our model.

    ``source`` is a torchvision model, its state dict, or a file. Our names are torchvision's, so the
    keys map 1:1; the attention blocks keep their initialisation and are listed in ``report.new``.
    ``exclude``: key prefixes of the source to leave out (e.g. ``("conv1.",)`` for the CIFAR stem).
    """
    return _load_checked(model, _as_state_dict(source), exclude, "torchvision weights")


_MM_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(.*)$")
_MM_CONV = re.compile(r"^conv\.(\d+)\.(conv|bn)\.(.*)$")


def _convert_mm_mobilenet(backbone: StateDict, attention_position: str) -> StateDict:
    blocks = sorted(
        {(int(m[1]), int(m[2])) for k in backbone if (m := _MM_BLOCK.match(k))}
    )  # (stage, block) in order
    index = {b: n + 1 for n, b in enumerate(blocks)}  # features.0 is the stem
    convs: dict[tuple[int, int], int] = {}
    for k in backbone:
        if (m := _MM_BLOCK.match(k)) and (c := _MM_CONV.match(m[3])):
            b = (int(m[1]), int(m[2]))
            convs[b] = max(convs.get(b, 0), int(c[1]) + 1)
    last = len(blocks) + 1
    out: StateDict = {}
    for k, v in backbone.items():
        m = _MM_BLOCK.match(k)
        if k.startswith(("conv1.conv.", "conv1.bn.")):
            out[k.replace("conv1.conv.", "features.0.0.").replace("conv1.bn.", "features.0.1.")] = v
        elif k.startswith(("conv2.conv.", "conv2.bn.")):
            out[
                k.replace("conv2.conv.", f"features.{last}.0.").replace("conv2.bn.", f"features.{last}.1.")
            ] = v
        elif m and (c := _MM_CONV.match(m[3])):
            b = (int(m[1]), int(m[2]))
            n, i, n_convs = index[b], int(c[1]), convs[b]
            if i < n_convs - 1:  # a conv-BN-ReLU6 stage: conv.i.0 / conv.i.1
                out[f"features.{n}.conv.{i}.{0 if c[2] == 'conv' else 1}.{c[3]}"] = v
            else:  # the projection: a bare conv then a BN, torchvision's conv.i and conv.i+1
                out[f"features.{n}.conv.{i if c[2] == 'conv' else i + 1}.{c[3]}"] = v
        elif m and m[3].startswith("attn."):
            b = (int(m[1]), int(m[2]))
            # our block's child `attn`, wherever it sits in the forward
            out[f"features.{index[b]}.attn.{m[3][len('attn.') :]}"] = v
        else:
            out["backbone." + k] = v  # unknown: left visibly foreign, so loading reports it
    return out


def convert_mmpretrain(state_dict: Mapping[str, torch.Tensor], attention_position: str = "mid") -> StateDict:
    """Rename an MMPretrain ``ImageClassifier`` state dict (ResNet/ResNetSCSA or MobileNetV2/MobileNetV2SCSA) to ours.

    ResNet: ``backbone.`` is dropped (mmcv already names BatchNorms ``bn1``…; ``norm1``… are mapped to
    them too), ``head.fc.*`` becomes ``fc.*``, ``layerX.Y.attn.*`` stays. MobileNetV2: ``backbone.conv1``
    → ``features.0``, ``backbone.layerX.Y`` → ``features.N`` (running index), each ``ConvModule``'s
    ``conv``/``bn`` → torchvision's indices, ``attn`` → the block's ``attn`` child,
    ``backbone.conv2`` → ``features.18``, ``head.fc`` → ``classifier.1``. ``attention_position`` is
    accepted for compatibility: the keys no longer depend on it.
    """
    state = _unwrap(state_dict, "the MMPretrain state dict")
    state = {k: v for k, v in state.items() if not k.startswith("data_preprocessor.")}
    if any(k.startswith("backbone.stem.") for k in state):
        raise ValueError(
            "this MMPretrain checkpoint has a deep stem ('backbone.stem.*', ResNetV1c/V1d); "
            "scsa's ResNets have torchvision's 7x7 stem and cannot hold it"
        )
    backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    rest = {k: v for k, v in state.items() if not k.startswith("backbone.")}
    is_mobilenet = any(re.match(r"^layer\d+\.\d+\.conv\.\d+\.conv\.weight$", k) for k in backbone)
    if is_mobilenet:
        out = _convert_mm_mobilenet(backbone, attention_position)
        head = "classifier.1."
    else:
        out = {re.sub(r"(^|\.)norm(\d)\.", r"\1bn\2.", k): v for k, v in backbone.items()}
        head = "fc."
    for k, v in rest.items():
        out[head + k[len("head.fc.") :] if k.startswith("head.fc.") else k] = v
    return out


def load_mmpretrain_weights(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    exclude: Sequence[str] = (),
) -> LoadReport:
    """Load an MMPretrain checkpoint (the released ``ResNetSCSA``/``MobileNetV2SCSA``) into our model."""
    state = source if isinstance(source, Mapping) else read_checkpoint(source)
    position = getattr(model, "attention_position", "mid")
    return _load_checked(model, convert_mmpretrain(state, position), exclude, "MMPretrain checkpoint")


def load_checkpoint(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor] | nn.Module,
    exclude: Sequence[str] = (),
) -> LoadReport:
    """Load ours, torchvision's or MMPretrain's weights into ``model``, telling them apart by their keys.

    MMPretrain files are recognised by their ``backbone.`` keys and converted; everything else is
    loaded under our (= torchvision's) names. Returns a :class:`LoadReport`.
    """
    state = _as_state_dict(source)
    if any(k.startswith("backbone.") for k in state):
        return load_mmpretrain_weights(model, state, exclude)
    return _load_checked(model, state, exclude, "checkpoint")
