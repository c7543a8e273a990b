"""Experiment geometry for the masks: sensor attenuation, px->mm strategies, pixel resolution, powder rings.

* :mod:`~findspots.geometry.attenuation`: linear attenuation coefficient of Si/CdTe sensors (NIST tables);
* :mod:`~findspots.geometry.parallax`: pixel to lab coordinates, simple or parallax-corrected;
* :mod:`~findspots.geometry.resolution`: d at every pixel centre, and at the panel corners;
* :mod:`~findspots.geometry.space_groups`: systematic absences and unit-cell checks;
* :mod:`~findspots.geometry.ice_rings`: ring d-spacings and the resolution intervals they mask.
"""
