"""Value types that params and the files made from them share, so both are checked alike.

``ingest`` settings become the decode settings a trained model carries in its spec;
a tampered ``models/model.json`` is refused by the very limits params.yaml is held to.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

ImageSize = Annotated[int, Field(ge=8, le=1024)]  # pixels per side after decoding
Channels = Literal[1, 3]  # 1 = grayscale, 3 = RGB
ResizeMode = Literal["squash", "center_crop", "letterbox"]
PixelLimit = Annotated[int, Field(ge=1)]  # larger images are skipped as decompression bombs
