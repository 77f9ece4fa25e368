"""fuselab's Hydra configs (installed as the package ``fuselab.conf``)."""

from fuselab.runs.resolvers import register as _register

_register()
