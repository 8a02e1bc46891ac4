"""Pass values to later workflow steps through the file named by ROIERGASIAS_ENV."""

import os


def set_output(name, value):
    """Append NAME=value to $ROIERGASIAS_ENV; later steps read it as {{env:NAME}}.

    Outside roiergasias (the variable unset) this only prints the value.
    """
    path = os.environ.get("ROIERGASIAS_ENV")
    if path:
        with open(path, "a", encoding="utf-8") as env_file:
            env_file.write(f"{name}={value}\n")
    print(f"output {name}={value}")
