"""Each service's tables and domain operations, and the shared database plumbing.

`models.pet`, `models.photo`, `models.inventory` and `models.user` never import one
another: a service reaches another only through a task or an event (see setup.cfg).
"""
