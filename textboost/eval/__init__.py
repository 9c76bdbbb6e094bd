"""Evaluation: rate–distortion against standard codecs at equal byte budgets, metrics, BD.

Never imported by the runtime packages. Entry point: `python -m textboost.eval rd|strip`.
"""

from textboost.codec.image import psnr_db
from textboost.eval.bd import bd_psnr, bd_rate
from textboost.eval.metrics import ms_ssim

__all__ = ["bd_psnr", "bd_rate", "ms_ssim", "psnr_db"]
