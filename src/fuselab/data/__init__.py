"""Data: the contract (:mod:`~fuselab.data.specs`), the datamodule base
(:mod:`~fuselab.data.datamodule`), batch reading and collation, and one module per dataset."""
