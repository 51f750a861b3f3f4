"""Visual explanations of models with and without SCSA (Si et al., https://arxiv.org/abs/2407.05128).

The pictures and numbers the authors publish, for any checkpoint of ``scsa classify train`` or any
module:

* :func:`gradcam` / :func:`explain_image`: Grad-CAM, Grad-CAM++, Eigen-CAM and the other methods of
  pytorch-grad-cam; :func:`cam_grid_results` + :func:`plots.cam_figure` for the side-by-side grid.
* :func:`erf`: effective receptive fields per stage (RepLKNet's method) and :func:`erf_table`.
* :func:`capture`: the gates every SCSA block computed (a context manager); :func:`maps` draws them.
* :func:`detection_cam`: Eigen-CAM of a detector's backbone and FPN (``scsa detect train`` checkpoints).
* :func:`ssim` / :func:`ssim_table`: SSIM between the input and a stage's channel-mean feature map.

Needs the ``explain`` extra (grad-cam, matplotlib, torchmetrics).
"""

from scsa.explain import plots
from scsa.explain._data import load_images
from scsa.explain._model import Explainable, load_image, resolve, stage_module, stage_outputs
from scsa.explain.capture import CaptureMismatchError, attention_blocks, capture, channel_attention
from scsa.explain.detection import detection_cam, explain_detection
from scsa.explain.erf import ERF_THRESHOLDS, ErfResult, erf, erf_ratios, erf_table
from scsa.explain.gradcam import CAM_METHODS, CamResult, cam_grid_results, explain_image, gradcam
from scsa.explain.maps import maps
from scsa.explain.ssim import feature_map, ssim, ssim_table

__all__ = [
    "CAM_METHODS",
    "ERF_THRESHOLDS",
    "CamResult",
    "CaptureMismatchError",
    "ErfResult",
    "Explainable",
    "attention_blocks",
    "cam_grid_results",
    "capture",
    "channel_attention",
    "detection_cam",
    "erf",
    "erf_ratios",
    "erf_table",
    "explain_detection",
    "explain_image",
    "feature_map",
    "gradcam",
    "load_image",
    "load_images",
    "maps",
    "plots",
    "resolve",
    "ssim",
    "ssim_table",
    "stage_module",
    "stage_outputs",
]
