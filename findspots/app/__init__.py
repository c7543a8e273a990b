"""The command-line application: argument handling (:mod:`~findspots.app.parameters`), the run
(:mod:`~findspots.app.pipeline`), the entry point (:mod:`~findspots.app.cli`), logging and process set-up."""
