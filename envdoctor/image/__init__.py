"""``envdoctor build``: a recipe rendered to a Dockerfile, built through the Docker SDK, validated inside.

Touches: see :mod:`envdoctor.image.pipeline`: the Docker engine (one image, short-lived containers)
and the files named on the command line; nothing else on the host.

The steps are separate modules so that each can be tested against a real engine on its own:

- :mod:`envdoctor.image.dockerfile` renders the Dockerfile from a recipe (pure text, no engine);
- :mod:`envdoctor.image.context` assembles the small build context (envdoctor's source tree, or
  the wheel of an installed envdoctor, + CA certificates);
- :mod:`envdoctor.image.engine` connects to the engine and probes GPU passthrough (``container-gpu``);
- :mod:`envdoctor.image.stream` runs the build, parses the stream, cleans up after a failure;
- :mod:`envdoctor.image.validate` runs ``envdoctor check --json`` (and ``smoke-train``) in the image;
- :mod:`envdoctor.image.pipeline` runs them in order for ``build`` and returns the outcome;
- :mod:`envdoctor.image.render` renders build progress (stderr) and what the image reported.
"""
