"""A GPU lease: preparing the transfers here, and the lent machine's side.

- ``kit``: ``hfpose-lease``; ``pack``: ``make_start_weights``, ``pack_for_lease``,
  ``DEVICE_TREE`` (the files the lease tree holds), ``transfer_bytes``
- ``device``: run as a file on the lent machine (``python3 training/lease/device.py``):
  ``receive``, ``train``, ``join_weight_parts``
"""
