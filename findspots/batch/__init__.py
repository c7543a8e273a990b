"""The batch layer: plan image blocks, run them on an executor, checkpoint and merge them.

It knows nothing of pixels beyond the block result type (``findspots.spotfinder.blocks.BlockResult``).
"""
