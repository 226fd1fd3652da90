"""Words the demo generator builds one-line briefs from.

Each category has its own keywords; many keywords are shared by two or three related categories (Beach,
Sea and Underwater share "ocean"; Corporate and Business share "office"), and every brief also carries
distractor words common to all categories ("4K", "footage", "slow motion"), as real stock-video briefs do.
So no single word gives the label away.
"""
from __future__ import annotations

from typing import Dict, Tuple

CATEGORY_WORDS: Dict[str, Tuple[str, ...]] = {
    "360VR": ("360 degree", "virtual reality", "panorama", "immersive", "spherical view", "VR headset", "city"),
    "4k": ("ultra HD", "high resolution", "crisp detail", "4K", "landscape", "city", "nature"),
    "Abstract": ("abstract shapes", "fractal", "geometric", "swirling lines", "particles", "colorful", "pattern"),
    "Aerial": ("drone", "aerial view", "bird's eye", "flyover", "from above", "landscape", "coastline"),
    "Alpha Channel": ("transparent", "alpha matte", "overlay", "isolated", "cutout", "particles", "glow"),
    "Animals": ("wildlife", "lion", "deer", "dog", "birds", "grazing", "herd", "animal"),
    "Archival": ("vintage", "old film", "historical", "black and white", "1950s", "retro", "grain"),
    "Backgrounds": ("background", "loop", "gradient", "bokeh", "pattern", "seamless", "glow"),
    "Beach": ("beach", "sand", "surf", "shoreline", "palm trees", "sunbathing", "ocean", "waves"),
    "Business": ("businessman", "meeting", "office", "handshake", "finance", "deal", "team"),
    "Celebration": ("party", "fireworks", "confetti", "cheering", "festival", "balloons", "crowd"),
    "City": ("city", "skyline", "street", "traffic", "downtown", "buildings", "night lights"),
    "Clouds": ("clouds", "sky", "cumulus", "overcast", "sunset sky", "weather", "fog"),
    "Corporate": ("corporate", "office", "presentation", "teamwork", "laptop", "colleagues", "team"),
    "Explosion": ("explosion", "blast", "fireball", "smoke", "debris", "fire", "sparks"),
    "Film": ("cinematic", "film look", "dramatic", "movie scene", "actor", "lens flare", "grain"),
    "Green Screen": ("green screen", "chroma key", "keying", "studio", "isolated", "overlay", "actor"),
    "Intro": ("intro", "logo reveal", "opening", "title", "glitch", "particles", "countdown"),
    "Military": ("soldier", "army", "tank", "helicopter", "military", "camouflage", "smoke"),
    "Nature": ("forest", "waterfall", "mountains", "meadow", "flowers", "river", "nature"),
    "News": ("news", "breaking", "reporter", "broadcast", "headline", "studio", "crowd"),
    "R3d": ("RED camera", "raw footage", "r3d", "cinema camera", "cinematic", "high resolution", "detail"),
    "Romantic": ("couple", "love", "romantic", "kiss", "hearts", "sunset", "holding hands"),
    "Sea": ("sea", "ocean", "waves", "sailing", "boat", "horizon", "coastline"),
    "Sport": ("athlete", "football", "running", "stadium", "training", "basketball", "team"),
    "Technology": ("technology", "circuit", "digital", "data", "robot", "hologram", "network"),
    "Timelapse": ("timelapse", "time lapse", "passing hours", "day to night", "clouds", "traffic", "stars"),
    "Underwater": ("underwater", "coral reef", "diver", "fish", "ocean", "bubbles", "scuba"),
    "Wedding": ("wedding", "bride", "groom", "ceremony", "rings", "love", "bouquet"),
    "space": ("space", "planet", "earth from orbit", "astronaut", "galaxy", "satellite", "rocket"),
    "stars": ("stars", "night sky", "milky way", "starry", "constellation", "galaxy", "astrophotography"),
}

#: Words any brief may carry, whatever its category.
DISTRACTOR_WORDS: Tuple[str, ...] = (
    "4K", "HD", "footage", "slow motion", "beautiful", "shot", "view", "close up", "wide shot", "moving",
    "background", "people", "summer", "light", "video", "loop", "colorful", "cinematic",
)

TEMPLATES: Tuple[str, ...] = (
    "{d1} {k1} with {k2}",
    "{k1} and {k2} {d1}",
    "{d1} {d2} of {k1}",
    "{k1} {d1} {k2} {d2}",
    "{d1} {k1} at {k2}",
    "{k1}, {k2} and {k3} {d1}",
    "{d1} {k1} in {d2}",
)
