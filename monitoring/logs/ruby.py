"""The pipeline's Ruby filter: the rules' classes as Ruby, and the code that nests and redacts
an event, the twin of monitoring/logs/redaction.py and evaluation.py (tests/logs/test_ruby.py
runs both on the same events)."""

from __future__ import annotations

from monitoring.logs.model import Rules


def _ruby_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
    return f'"{escaped}"'


def _ruby_regexp(pattern: str | None) -> str:
    return "nil" if pattern is None else f"Regexp.new({_ruby_string(pattern)})"


def ruby_init(rules: Rules) -> str:
    """The Ruby filter's init: the classes and the functions that nest and redact a Hash.
    Instance variables and lambdas only: the filter evals this inside a method."""
    rows = [
        f"  [{_ruby_string(c.name)}, {_ruby_regexp(c.text)}, {_ruby_regexp(c.key)},"
        f" {_ruby_string(c.replacement)}, {str(c.luhn).lower()}],"
        for c in rules.classes
    ]
    return "\n".join(["@classes = [", *rows, "]", _RUBY_FUNCTIONS.strip()])


# Ruby has no single quote anywhere: the code sits in a single-quoted Logstash string, which
# keeps backslashes as they are (config.support_escapes is off by default).
_RUBY_FUNCTIONS = """
@luhn = lambda do |digits|
  total = 0
  digits.reverse.each_char.each_with_index do |char, position|
    digit = char.to_i
    digit = (digit > 4 ? digit * 2 - 9 : digit * 2) if position.odd?
    total += digit
  end
  total % 10 == 0
end
@redact_text = lambda do |text|
  @classes.each do |_name, pattern, _key, replacement, luhn|
    next if pattern.nil?
    text = text.gsub(pattern) do
      match = Regexp.last_match
      kept = match.size > 1 ? match[1].to_s : ""
      if luhn && !@luhn.call(match[0][kept.length..].gsub(/[^0-9]/, ""))
        match[0]
      else
        kept + replacement
      end
    end
  end
  text
end
@secret_field = lambda do |key|
  parts = key.split(".", -1)
  rule = @classes.find { |row| !row[2].nil? && parts.any? { |part| row[2].match?(part) } }
  rule && rule[3]
end
@redact = lambda do |value|
  case value
  when String then @redact_text.call(value)
  when Hash
    value.each_with_object({}) do |(key, item), out|
      out[key] = @secret_field.call(key.to_s) || @redact.call(item)
    end
  when Array then value.map { |item| @redact.call(item) }
  else value
  end
end
@nest = lambda do |event|
  out = event.reject { |key, _| key.include?(".") }
  event.keys.select { |key| key.include?(".") }.sort.each do |key|
    parts = key.split(".", -1)
    fits = parts.none? { |part| part.empty? || part.include?("[") || part.include?("]") }
    node = out
    if fits
      parts[0..-2].each do |part|
        child = node.is_a?(Hash) ? node[part] : nil
        if !child.nil? && !child.is_a?(Hash)
          fits = false
          break
        end
        node = child.nil? ? {} : child
      end
    end
    if fits
      node = out
      parts[0..-2].each do |part|
        node = (node[part] = node[part].is_a?(Hash) ? node[part].dup : {})
      end
      node[parts[-1]] = event[key]
    else
      out[key] = event[key]
      out["tags"] = (out["tags"].is_a?(Array) ? out["tags"] : []) + ["_ecs_conflict"]
    end
  end
  out
end
"""

# The filter's code: nest and redact a copy of the event, then write back what changed.
RUBY_CODE = """
before = event.to_hash
after = @redact.call(@nest.call(before))
(before.keys - after.keys).each { |key| event.remove("[#{key}]") }
after.each { |key, value| event.set("[#{key}]", value) unless before[key] == value }
"""
