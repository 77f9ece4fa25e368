"""Data, in three kinds:

- the contract and the base: :mod:`~fuselab.data.specs` (what a dataset describes),
  :mod:`~fuselab.data.datamodule` (preparation, cache, normalisation, loaders) and the modules it
  is made of (reading Arrow splits, checks, labels, samplers, collation, source stamps);
- :mod:`fuselab.data.readers`: raw inputs made into arrays (text, audio, images and video frames,
  frozen pretrained features, the MNIST and FSDD files);
- :mod:`fuselab.data.datasets`: one module per dataset, each a :class:`PairedDataModule`.
"""
