"""Background-music matching for micro-videos (DecCM's task): a musicnn-embedded music library, (video, music)
pairs, a TFRS two-tower matcher from video content embeddings to music embeddings, DecCM's evaluation beside
simple baselines, and a TF Serving export with a ``recommend_music`` signature. Verbs: ``retrieval.music.cli``.

Importing this package needs no TensorFlow.
"""
