"""One module per dataset, each a :class:`~fuselab.data.datamodule.PairedDataModule` that says how
its splits are built; ``conf/data/<name>.yaml`` names the class."""
