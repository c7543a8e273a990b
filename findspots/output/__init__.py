"""What a run writes and prints: the DIALS reflection table (:mod:`~findspots.output.refl`) and the
log's spot-size histogram (:mod:`~findspots.output.histogram`)."""
