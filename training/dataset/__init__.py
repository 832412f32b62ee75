"""Training data: datasets from the config, their records, crop caches, sampling, augmentation.

- ``builder``: ``build_dataset``, ``dataset_layout``; ``records``: COCO and MPII records,
  ``TopDownDataset``, ``MixedDataset``; ``crop_dataset``: ``CropCacheDataset``
- ``crop_cache``: ``hfpose-cache-crops``, ``CropCache``; ``encode_cache``:
  ``hfpose-encode-cache``
- ``samplers``, ``transforms``; ``device_batches``: ``DeviceBatches`` (the config's
  ``DeviceBatchAugment``), the same pipeline run in batch on the training device
- ``label_weights``, ``make_splits``, ``coco_files``
"""
