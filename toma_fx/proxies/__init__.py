"""Proxy denoisers trained here on real photographs, so that quality is measured on trained weights.

    from toma_fx.proxies import PROXIES, load
    model, prompts, report = load("flux")            # the shipped weights, from_pretrained
    images = PROXIES["flux"].sample(model, prompts(labels), steps=20, generator=g)

`data` (photographs and crops), `models` (the architectures, their objectives and samplers), `train`
(`toma-fx train-proxy`), `store` (weights on disk).
"""

from toma_fx.proxies.models import PROXIES, Prompts, Proxy
from toma_fx.proxies.store import WEIGHTS, load, save

__all__ = ["PROXIES", "WEIGHTS", "Prompts", "Proxy", "load", "save"]
