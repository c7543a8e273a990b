"""``findspots-server``: spot finding on single images over HTTP, speaking ``dials.find_spots_server``'s API.

Modules: :mod:`.request` (a request's path and parameters), :mod:`.spots` (one image's spots and
figures, in a worker), :mod:`.workers` (the pool that runs them), :mod:`.server` (HTTP and the command).
"""
