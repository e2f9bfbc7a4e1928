; Candidate write sites in Python. Rust (src/scan/python.rs) gives them meaning.
((call
   function: [(identifier) @fn
              (attribute attribute: (identifier) @fn)]) @call
  (#match? @fn "^(open|write_text|write_bytes|replace|rename|move|mkdir|makedirs|remove|unlink|flock|lockf|connect|bind|system|run|call|check_call|check_output|Popen|FileLock|execute|touch)$"))
