"""Serving at scale: Triton model repositories (``python -m asap_deploy.triton``) and a Ray Serve
application (``python -m asap_deploy.serve``).

``triton_schema``  Triton's protobuf schema (tritonclient) and the dtype names of ONNX, numpy, Triton
``triton_config``  one model's configuration as data, and its config.pbtxt text
``triton_sources`` an export folder and a built engine, read into model configurations
``triton_check``   a repository checked the way Triton would read it, offline
``triton_readme``  the repository's README: launch lines, request format, plugin caveats
``triton_repo``    the repository written atomically, validated before it is renamed into place
``http_codec``     what the HTTP API takes and answers (PNG body or multipart form; 4xx reasons)
``ray_app``        the Ray Serve deployment: asap_deploy.load() per replica, @serve.batch queue
``ray_cluster``    a private local Ray instance: own folder, token in memory, no usage statistics
"""
