"""The DUT's debug probe (SWD) through pyocd: :class:`SwdProbe`.

``probe.py`` the driver, ``image.py`` firmware images (.bin/.hex/.elf, hash, version),
``fields.py`` NVM fields of the rig file's ``dut.swd.nvm_layout``, ``unique_id.yaml`` where MCUs
keep their unique ID. pyocd itself is imported only when a probe is opened.
"""

from drivers.swd.fields import FieldError
from drivers.swd.image import FirmwareImage, ImageError, load_image
from drivers.swd.probe import FlashResult, ResetKind, SwdError, SwdProbe, load_pyocd

__all__ = ["FieldError", "FirmwareImage", "FlashResult", "ImageError", "ResetKind", "SwdError", "SwdProbe",
           "load_image", "load_pyocd"]
