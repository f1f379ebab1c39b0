"""NNIP scaling-law pipeline: data, models, training and scaling analysis.

The Snakemake workflow under ``workflow/`` is a thin layer over this package;
every stage can be imported and run without Snakemake.
"""

__version__ = "0.1.0"
