"""Data stage: raw sources -> HDF5 store -> batches with radius graphs.

Modules
-------
demo      the embedded GFN2-xTB demo dataset and its generator
readers   record readers of the sources (demo file, extxyz, OMol25 ``*.aselmdb`` shards)
extract   ``extract_dataset``: filters, validation split, shuffle, ``train.h5``/``val.h5``,
          ``stats.json``, ``summary.json``
store     ``MoleculeStore``: a prefix (data fraction) of a split, in memory
stats     ``load_stats``, ``referenced_energy``
graphs    ``radius_graph`` in pure torch
loader    ``Batch``, ``make_batch``, ``epoch_order``, ``iterate_batches``,
          ``validation_batches``
"""
