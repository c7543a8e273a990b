"""The spot finder proper, per block of images: strong pixels, connected components, spot measures, filters.

* :mod:`~findspots.spotfinder.masks`: static masks (border, untrusted regions, resolution, ice, files);
* :mod:`~findspots.spotfinder.exclusions`: ``exclude_images`` and friends;
* :mod:`~findspots.spotfinder.strong`: the strong-pixel mask of one image (mask + threshold);
* :mod:`~findspots.spotfinder.labelling`: connected components (2D 4-connected, 3D 6-connected);
* :mod:`~findspots.spotfinder.spots`: centroids, intensities, bounding boxes, shoeboxes of components;
* :mod:`~findspots.spotfinder.blocks`: one block of images -> interior spots + edge components; the merge;
* :mod:`~findspots.spotfinder.filters`: size, separation, gradient, density filters on the spot list;
* :mod:`~findspots.spotfinder.hot_mask`: the hot-pixel mask (``write_hot_mask``).

Nothing here knows of executors or clusters: :mod:`findspots.batch` runs blocks and merges them.
"""
