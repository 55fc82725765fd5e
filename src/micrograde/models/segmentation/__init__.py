"""Segmentation of bad regions: a U-Net mask model (inputs, network, training, storage, default model).

See ``docs/masks.md``. Submodules: :mod:`.inputs` (numpy: what the network sees), :mod:`.network`,
:mod:`.train`, :mod:`.store` (card, weights, :class:`~.store.MaskModel`), :mod:`.default`
(workspace folders, the default model), :mod:`.metrics` (IoU).
"""

__all__: list[str] = []
