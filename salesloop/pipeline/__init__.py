"""The training pipeline's steps as plain functions (the kfp components in ``training/`` wrap them).

Keeping the logic here, in the installable package, means the same code runs in a kfp subprocess,
in a Vertex AI container built from the package, and directly in unit tests, while ``training/``
only declares inputs, outputs and wiring.
"""
