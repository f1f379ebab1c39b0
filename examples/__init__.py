"""Architectures from outside ``pipeline.models``, trained through ``archs.<name>.model``.

Importable from the checkout's root (Snakemake's working directory): ``pipeline.models``
searches the working directory when ``examples`` is not an installed package.
"""
