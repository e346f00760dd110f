# Runs the ruby filter of a Logstash pipeline outside Logstash, for tests/logs/test_ruby.py.
# Usage: ruby ruby_filter.rb INIT_FILE CODE_FILE < requests.jsonl > answers.jsonl
# The init and code are compiled the way logstash-filter-ruby 3.1 does it (eval of init in the
# filter's binding, the code as a singleton method). The event is a stand-in for
# LogStash::Event with the part of its API the code uses: to_hash (a deep copy), and set and
# remove of top-level field references ("[name]").
# A request is {"event": {...}} (answered with the event after the filter) or
# {"pattern": "...", "text": "..."} (answered with the [start, end] of every match).
require "json"

class StandInEvent
  attr_reader :data

  def initialize(data)
    @data = data
  end

  def to_hash
    JSON.parse(JSON.generate(@data))
  end

  def set(reference, value)
    @data[top(reference)] = value
  end

  def remove(reference)
    @data.delete(top(reference))
  end

  private

  def top(reference)
    match = /\A\[([^\[\]]+)\]\z/.match(reference)
    raise ArgumentError, "not a top-level field reference: #{reference}" if match.nil?

    match[1]
  end
end

class InlineRubyFilter
  def initialize(init, code)
    eval(init, binding, "(ruby filter init)")
    eval("define_singleton_method :filter_method do |event, &new_event_block|\n #{code} \nend",
         binding, "(ruby filter code)")
  end
end

filter = InlineRubyFilter.new(File.read(ARGV[0]), File.read(ARGV[1]))
$stdin.each_line do |line|
  request = JSON.parse(line)
  answer =
    if request.key?("event")
      event = StandInEvent.new(request["event"])
      filter.filter_method(event)
      event.data
    else
      text = request["text"]
      text.to_enum(:scan, Regexp.new(request["pattern"])).map { Regexp.last_match.offset(0) }
    end
  $stdout.puts(JSON.generate(answer))
end
