"""plate_lib: Chinese licence-plate recognition on CCPD, from data to report.

Modules, one concept each: ``config`` (cfg.yaml schema), ``plates`` (alphabet, labels), ``images`` (bounded
decoding), ``sources`` (dl1 zips, crop folders, CCPD photos), ``synth`` (synthetic plates), ``preprocess``
(letterbox, parallel decoding), ``dataset`` (decoded cache, batches), ``augment``, ``models`` (registry),
``checkpoints`` (data only), ``train``, ``reading`` (decoding, the second look; no torch), ``inference``,
``graph`` (ONNX Runtime without torch, cached graphs), ``export`` (ONNX), ``errors``, ``metrics``, ``analysis``,
``cli``; README "Layout" lists them all.
"""

__version__ = "0.1.0"
