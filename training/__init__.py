"""The kfp v2 training pipeline: one lightweight component per file under ``components/``.

Components only declare inputs and outputs and call :mod:`salesloop.pipeline.steps`; the image they
run in (on Vertex AI) is the project's training image with the ``salesloop`` package installed, so
``install_kfp_package=False``: the image already has kfp, and pip must not run at step start.
"""
