"""FX passes of the ToMA backend, installed as `toma_fx.passes`.

Import them as `toma_fx.passes.<name>`, never as a bare `passes`: the folder has no top-level name once
installed.
"""
