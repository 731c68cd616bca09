"""Unit analyses: what single channels of a layer do (concepts, dissection, style units, ablation)."""
