; Candidate write sites in JavaScript/TypeScript. Rust (src/scan/javascript.rs) gives them meaning.
((call_expression
   function: [(identifier) @fn
              (member_expression property: (property_identifier) @fn)]) @call
  (#match? @fn "^(appendFile|appendFileSync|writeFile|writeFileSync|openSync|open|createWriteStream|rename|renameSync|mkdir|mkdirSync|unlink|unlinkSync|rmSync|rm|execSync|exec|execFileSync|spawnSync|spawn|lock|lockSync|pragma|listen|copyFile|copyFileSync)$"))
(new_expression) @new
