import os

from hypothesis import settings

# Local runs explore new examples every time; CI (CI=true) replays a fixed
# sequence so that a red build is reproducible.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
