"""``mx.image`` (alias ``mx.img``): decode, resize, crop and augment images.

Images are (H, W, C) uint8 NDArrays in RGB order, as in MXNet; functions also take and return
numpy arrays. Decoding needs Pillow (imported on first use); resizing reproduces OpenCV's
arithmetic, so pixels match MXNet's.

Example::

    >>> img = mx.image.imread('cat.jpg')                 # (H, W, 3) uint8
    >>> img = mx.image.resize_short(img, 256)
    >>> img, _ = mx.image.center_crop(img, (224, 224))
    >>> augs = mx.image.CreateAugmenter((3, 224, 224), rand_mirror=True, mean=True, std=True)
"""
from __future__ import annotations

from .augment import (Augmenter, BrightnessJitterAug, CastAug, CenterCropAug, ColorJitterAug,
                      ColorNormalizeAug, ContrastJitterAug, CreateAugmenter, ForceResizeAug,
                      HorizontalFlipAug, HueJitterAug, LightingAug, RandomCropAug,
                      RandomGrayAug, RandomOrderAug, RandomSizedCropAug, ResizeAug,
                      SaturationJitterAug, SequentialAug)
from .codec import ImageDecodeError
from .image_iter import ImageIter
from .image import (center_crop, color_normalize, copyMakeBorder, fixed_crop, imdecode, imread,
                    imresize, random_crop, random_size_crop, resize_short, scale_down)

__all__ = ["imdecode", "imread", "imresize", "resize_short", "fixed_crop", "center_crop",
           "random_crop", "random_size_crop", "color_normalize", "scale_down", "copyMakeBorder",
           "ImageDecodeError", "Augmenter", "SequentialAug", "RandomOrderAug", "ResizeAug",
           "ForceResizeAug", "RandomCropAug", "RandomSizedCropAug", "CenterCropAug",
           "BrightnessJitterAug", "ContrastJitterAug", "SaturationJitterAug", "HueJitterAug",
           "ColorJitterAug", "LightingAug", "ColorNormalizeAug", "RandomGrayAug",
           "HorizontalFlipAug", "CastAug", "CreateAugmenter", "ImageIter"]
