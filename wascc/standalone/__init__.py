"""The standalone host behind ``wascc up``: what keeps a Host in step with
files, manifests and operators.

The signal loop (:mod:`~wascc.standalone.daemon`), the reconciler
(:mod:`~wascc.standalone.reconciler`), watched directories
(:mod:`~wascc.standalone.watcher`, :mod:`~wascc.standalone.provider_directory`,
:mod:`~wascc.standalone.actor_directory`), provider resolution
(:mod:`~wascc.standalone.resolve`), manifests
(:mod:`~wascc.standalone.manifest`), the control socket
(:mod:`~wascc.standalone.control`), systemd notify, the built-in demo and
the dev loop.  It drives the Host; the Host never imports it.
"""
