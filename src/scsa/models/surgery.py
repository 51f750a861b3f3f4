"""Model surgery: put a zoo attention block at the SCSA paper's place inside someone else's backbone.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
https://arxiv.org/abs/2407.05128, section "Where the block sits" of the spec.

Supported, modified in place (no forward hooks: the blocks go where the forward already passes):

* torchvision ``ResNet`` (resnet*, resnext*, wide_resnet*): each ``BasicBlock``/``Bottleneck`` is
  replaced by scsa's block built from the very same conv/BN modules; state-dict keys stay and gain
  ``layerX.Y.attn.*``, exactly the keys of :func:`scsa.models.create_model`'s ResNets.
* torchvision ``MobileNetV2``: the block is appended to the depth-wise ``Conv2dNormActivation``
  (``features.N.conv.K.3``, "mid") or to the end of ``conv`` ("post"); scsa's MobileNetV2 loads
  such a state dict (its blocks rename those keys to ``features.N.attn.*``).
* timm ``ResNet`` (resnet*, resnext*): "mid" fills the ``aa`` slot that follows the 3×3 conv's act,
  "post" the ``se`` slot that follows the last BN.
* timm ``EfficientNet`` built of ``DepthwiseSeparableConv``/``InvertedResidual`` blocks without SE
  (``mobilenetv2_*``, ``mnasnet_*``): "mid" fills the ``se`` slot after the depth-wise conv's BN-act,
  "post" the identity ``act`` of the projection's ``BatchNormAct2d``.
* scsa's own ResNet / MobileNetV2 built with ``attention="none"``: each block's ``attn`` child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from scsa._compat import timm_efficientnet_blocks
from scsa.attention.identity import NoAttention
from scsa.models._common import AttentionSpec, check_position, make_attention
from scsa.models.mobilenetv2 import InvertedResidual as ScsaInvertedResidual
from scsa.models.mobilenetv2 import MobileNetV2 as ScsaMobileNetV2
from scsa.models.resnet import BasicBlock as ScsaBasicBlock
from scsa.models.resnet import Bottleneck as ScsaBottleneck
from scsa.models.resnet import ResNet as ScsaResNet
from scsa.models.resnet import adopt_block

__all__ = ["SUPPORTED", "insert_attention"]

SUPPORTED = (
    "torchvision ResNet/ResNeXt/Wide-ResNet",
    "torchvision MobileNetV2",
    "timm ResNet/ResNeXt",
    "timm MobileNetV2/MNASNet (EfficientNet class, blocks without SE)",
    "scsa ResNet/MobileNetV2 built with attention='none'",
)

# one planned change: (path of the new attention, its channels, the block it joins, how to install it)
_Plan = list[tuple[str, int, nn.Module, Callable[[nn.Module], None]]]


def _factory(module: nn.Module) -> dict[str, Any]:
    p = next(module.parameters(), None)
    return {} if p is None else {"device": p.device, "dtype": p.dtype}


def _occupied(path: str, module: nn.Module | None) -> ValueError:
    return ValueError(
        f"{path} already holds {type(module).__name__}; insert_attention only fills empty places "
        f"(start from a model without attention there)"
    )


def _plan_resnet(model: nn.Module, position: str) -> _Plan:
    import torchvision.models.resnet as tv

    plan: _Plan = []
    for i in range(1, 5):
        layer = getattr(model, f"layer{i}")
        for j, block in enumerate(layer):
            path = f"layer{i}.{j}"
            bottleneck = isinstance(block, (tv.Bottleneck, ScsaBottleneck))
            if bottleneck:
                channels = block.bn2.num_features if position == "mid" else block.bn3.num_features
            else:
                channels = block.bn1.num_features if position == "mid" else block.bn2.num_features
            if isinstance(block, (ScsaBasicBlock, ScsaBottleneck)):
                if not isinstance(block.attn, NoAttention):
                    raise _occupied(path + ".attn", block.attn)

                def install(attn: nn.Module, block: nn.Module = block) -> None:
                    block.attn = attn
                    block.attn_mid = position == "mid"

            elif type(block) in (tv.BasicBlock, tv.Bottleneck):

                def install(
                    attn: nn.Module, layer: nn.Module = layer, j: int = j, block: nn.Module = block
                ) -> None:
                    layer[j] = adopt_block(block, attn, position)

            else:
                raise ValueError(
                    f"{path} is a {type(block).__name__}, not a torchvision or scsa ResNet block"
                )
            plan.append((path + ".attn", channels, block, install))
    return plan


def _plan_torchvision_mobilenet(model: nn.Module, position: str) -> _Plan:
    import torchvision.models.mobilenetv2 as tv

    plan: _Plan = []
    for n, block in enumerate(model.features):
        if isinstance(block, ScsaInvertedResidual):
            if block.attention() is not None:
                raise _occupied(f"features.{n}.attn", block.attn)
            conv = block.conv
            channels = conv[block.dw_index][1].num_features if position == "mid" else conv[-1].num_features

            def install(attn: nn.Module, block: nn.Module = block) -> None:
                block.attn = attn
                block.attn_mid = position == "mid"

            plan.append((f"features.{n}.attn", channels, block, install))
            continue
        if not isinstance(block, tv.InvertedResidual):
            continue
        conv = block.conv
        k = len(conv) - 3  # [expand,] depth-wise stage, projection conv, BN
        dw = conv[k]
        if not (
            isinstance(dw, nn.Sequential)
            and len(dw) == 3
            and isinstance(dw[0], nn.Conv2d)
            and dw[0].groups > 1
        ):
            raise ValueError(
                f"features.{n}.conv.{k} is not the depth-wise conv-BN-ReLU6 stage of a MobileNetV2 block"
            )
        if position == "mid":
            path, channels, seq = f"features.{n}.conv.{k}.3", dw[1].num_features, dw
        else:
            path, channels, seq = f"features.{n}.conv.{len(conv)}", conv[-1].num_features, conv

        def install(attn: nn.Module, seq: nn.Sequential = seq) -> None:
            seq.append(attn)

        plan.append((path, channels, block, install))
    return plan


def _plan_timm_resnet(model: nn.Module, position: str) -> _Plan:
    from timm.models.resnet import BasicBlock, Bottleneck

    plan: _Plan = []
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            path = f"layer{i}.{j}"
            if not isinstance(block, (BasicBlock, Bottleneck)):
                raise ValueError(f"{path} is a {type(block).__name__}, not a timm BasicBlock/Bottleneck")
            last_bn = block.bn3 if isinstance(block, Bottleneck) else block.bn2
            if position == "mid":
                # `aa` follows the activation of the 3x3 conv (BasicBlock: of conv1); an identity unless
                # the model anti-aliases, in which case the attention follows the blur pool
                mid_bn = block.bn2 if isinstance(block, Bottleneck) else block.bn1
                if isinstance(block.aa, nn.Identity):
                    target = path + ".aa"

                    def install(attn: nn.Module, block: nn.Module = block) -> None:
                        block.aa = attn

                else:
                    target = path + ".aa.1"

                    def install(attn: nn.Module, block: nn.Module = block) -> None:
                        block.aa = nn.Sequential(block.aa, attn)

                plan.append((target, mid_bn.num_features, block, install))
            else:
                if block.se is not None and not isinstance(block.se, nn.Identity):
                    raise _occupied(path + ".se", block.se)

                def install(attn: nn.Module, block: nn.Module = block) -> None:
                    block.se = attn

                plan.append((path + ".se", last_bn.num_features, block, install))
    return plan


def _plan_timm_efficientnet(model: nn.Module, position: str) -> _Plan:
    DepthwiseSeparableConv, InvertedResidual = timm_efficientnet_blocks()

    plan: _Plan = []
    for i, stage in enumerate(model.blocks):
        for j, block in enumerate(stage):
            path = f"blocks.{i}.{j}"
            if isinstance(block, InvertedResidual):
                mid_bn, last_bn, last_name = block.bn2, block.bn3, "bn3"
            elif isinstance(block, DepthwiseSeparableConv):
                mid_bn, last_bn, last_name = block.bn1, block.bn2, "bn2"
            else:
                raise ValueError(
                    f"{path} is a timm {type(block).__name__}; only DepthwiseSeparableConv and InvertedResidual "
                    f"blocks (MobileNetV2, MNASNet) are supported"
                )
            if position == "mid":
                if not isinstance(block.se, nn.Identity):
                    raise _occupied(path + ".se", block.se)

                def install(attn: nn.Module, block: nn.Module = block) -> None:
                    block.se = attn

                plan.append((path + ".se", mid_bn.num_features, block, install))
            else:
                # BatchNormAct2d runs norm -> drop -> act; the projection's act is an identity slot
                if not isinstance(getattr(last_bn, "act", None), nn.Identity):
                    raise _occupied(f"{path}.{last_name}.act", getattr(last_bn, "act", None))

                def install(attn: nn.Module, last_bn: nn.Module = last_bn) -> None:
                    last_bn.act = attn

                plan.append((f"{path}.{last_name}.act", last_bn.num_features, block, install))
    return plan


def _planner(model: nn.Module) -> Callable[[nn.Module, str], _Plan] | None:
    if isinstance(model, ScsaResNet):
        return _plan_resnet
    if isinstance(model, ScsaMobileNetV2):
        return _plan_torchvision_mobilenet
    try:
        import torchvision.models as tvm

        if isinstance(model, tvm.ResNet):
            return _plan_resnet
        if isinstance(model, tvm.MobileNetV2):
            return _plan_torchvision_mobilenet
    except ImportError:  # torchvision is optional for surgery on timm models
        pass
    try:
        from timm.models.efficientnet import EfficientNet
        from timm.models.resnet import ResNet as TimmResNet

        if isinstance(model, TimmResNet):
            return _plan_timm_resnet
        if isinstance(model, EfficientNet):
            return _plan_timm_efficientnet
    except ImportError:
        pass
    return None


def insert_attention(
    model: nn.Module, name: AttentionSpec, position: str = "mid", **kwargs: Any
) -> list[str]:
    """Insert attention ``name`` into every block of ``model``, in place, at the paper's place.

    Args:
        model: a torchvision or timm ResNet/ResNeXt/MobileNetV2 (see :data:`SUPPORTED`).
        name: zoo name (``"scsa"``, ``"se"``, ...) or ``f(channels, **kwargs) -> nn.Module``.
        position: ``"mid"`` (the paper's: after the 3×3 / depth-wise conv's activation) or
            ``"post"`` (after the block's last norm, before the residual add).
        **kwargs: keyword arguments of every attention block.

    Returns:
        The module paths of the inserted blocks (``model.get_submodule(path)`` is each block).
        The new blocks take the device, dtype and train/eval mode of the block they join. Every
        place is checked before anything changes, so a failure leaves the model as it was.

    Example:
        >>> import torchvision
        >>> model = torchvision.models.resnet50()
        >>> paths = insert_attention(model, "scsa")  # ['layer1.0.attn', ..., 'layer4.2.attn']
    """
    check_position(position)
    planner = _planner(model)
    if planner is None:
        raise ValueError(
            f"insert_attention does not support {type(model).__module__}.{type(model).__qualname__}; "
            f"supported: {'; '.join(SUPPORTED)}"
        )
    plan = planner(model, position)
    if not plan:
        raise ValueError(f"found no residual block to put an attention in, in {type(model).__name__}")
    # build every block before installing any, so that a block that rejects a shape changes nothing
    blocks = [make_attention(name, channels, kwargs, **_factory(block)) for _, channels, block, _ in plan]
    for (_, _, block, install), attn in zip(plan, blocks):
        attn.train(block.training)
        install(attn)
    if isinstance(model, (ScsaResNet, ScsaMobileNetV2)):
        model.attention_position = position  # read by the MMPretrain converter
    return [path for path, _, _, _ in plan]
