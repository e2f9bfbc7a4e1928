"""python3 tests/agents/model SCRIPT.json [LIFETIME_SECONDS]: the scripted model server.

Prints its port on stdout, then serves on 127.0.0.1 until stdin closes or the lifetime (default
600 s) is over. See core.py for the script format and the control calls.
"""

import json
import sys

import anthropic
import gemini
import openai
import core

script = json.load(open(sys.argv[1])) if len(sys.argv) > 1 else {}
lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
core.serve([anthropic, gemini, openai], script, lifetime)
