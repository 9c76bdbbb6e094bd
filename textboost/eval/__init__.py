"""Evaluation: rate–distortion against standard codecs at equal byte budgets, metrics, BD.

Never imported by the runtime packages. Entry point: `python -m textboost.eval rd|strip`.
"""

from textboost.eval.bd import bd_psnr, bd_rate
from textboost.eval.metrics import ms_ssim, psnr

__all__ = ["bd_psnr", "bd_rate", "ms_ssim", "psnr"]
