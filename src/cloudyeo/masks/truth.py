"""The truth bit mask the demo world writes beside every Sentinel-2 scene (asset role
``demo-truth``) and :mod:`cloudyeo.masks.quality` scores cloud masks against."""

TRUTH_CLOUD = 1    # thick cloud
TRUTH_CIRRUS = 2   # thin cirrus
TRUTH_SHADOW = 4   # cloud shadow
TRUTH_SNOW = 8     # snow / ice
TRUTH_WATER = 16   # open surface water (inland, marine, flooded); land is neither water nor snow
