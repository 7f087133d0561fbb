#!/usr/bin/ruby
# Interop: the Ruby stomp gem (Debian `ruby-stomp`), Stomp::Connection on STOMP 1.2, round trips
# against the `stompbox` binary.
#
# Checks: CONNECT (accept-version:1.2, host:/), a client-individual queue subscription, SEND with
# a custom header, MESSAGE (body, header, destination, redelivered:false), ACK, SEND with a
# receipt, NACK and redelivery (redelivered:true), two MESSAGEs from one read (after the first
# is taken, the kernel holds nothing more for the socket: the second came in the same read), a
# topic round trip, DISCONNECT with a receipt. Stomp::Connection#receive blocks without a timeout
# of its own, so each is bounded with Timeout. The binary is $STOMPBOX_BIN, else
# <repo>/target/debug/stompbox; $INTEROP_STOMPBOX_ARGS is appended to its command line. Exits
# non-zero on failure.
require 'io/wait'
require 'securerandom'
require 'tempfile'
require 'timeout'
require 'stomp'

WAIT_S = 15
ROOT = File.expand_path('../..', __dir__)
BIN = ENV['STOMPBOX_BIN'].to_s.empty? ? File.join(ROOT, 'target/debug/stompbox') : ENV['STOMPBOX_BIN']
CAPABILITIES = %w[connect subscribe send receive ack nack receipt two-frames-in-one-read topic
                  disconnect].freeze

class Failure < StandardError; end

def fail!(text)
  raise Failure, text
end

def check(ok, text)
  fail!(text) unless ok
end

# Starts stompbox with stderr to a temporary file; returns [pid, port].
def start_server
  log = Tempfile.new('stompbox-interop')
  env = ENV.keys.grep(/\ASTOMPBOX_/).to_h { |k| [k, nil] }.merge('RUST_LOG' => 'info')
  extra = ENV.fetch('INTEROP_STOMPBOX_ARGS', '').split
  pid = Process.spawn(env, BIN, '--ws-listen', '127.0.0.1:0', '--tcp-listen', '127.0.0.1:0', *extra,
                      in: File::NULL, out: File::NULL, err: log.path)
  deadline = Time.now + WAIT_S
  while Time.now < deadline
    text = File.read(log.path)
    match = text.match(/listening websocket=\S+ tcp=\S+:(\d+)/)
    return [pid, Integer(match[1])] if match
    fail!("stompbox exited: #{text}") if Process.waitpid(pid, Process::WNOHANG)
    sleep 0.05
  end
  Process.kill('KILL', pid)
  Process.wait(pid)
  fail!("stompbox did not print its listening line within #{WAIT_S} s")
ensure
  log&.close
end

class Run
  def initialize(port)
    @pending = []
    @conn = Stomp::Connection.new(
      hosts: [{ login: 'guest', passcode: 'guest', host: '127.0.0.1', port: port, ssl: false }],
      reliable: false,
      connect_timeout: WAIT_S,
      connread_timeout: WAIT_S,
      connect_headers: { 'accept-version' => '1.2', 'host' => '/' }
    )
  end

  def next_frame(what)
    return @pending.shift unless @pending.empty?

    frame = begin
      Timeout.timeout(WAIT_S) { @conn.receive }
    rescue Timeout::Error
      fail!("no #{what} within #{WAIT_S} s")
    end
    fail!("connection closed while waiting for #{what}") if frame.nil?
    fail!("ERROR #{frame.headers} #{frame.body}") if frame.command == 'ERROR'
    frame
  end

  def expect_receipt(receipt)
    f = next_frame("RECEIPT #{receipt}")
    check(f.command == 'RECEIPT' && f.headers['receipt-id'] == receipt,
          "#{f.command} #{f.headers}, expected RECEIPT #{receipt}")
  end

  def expect_message(body, dest, redelivered)
    f = next_frame("MESSAGE #{body.inspect}")
    h = f.headers
    check(f.command == 'MESSAGE', "#{f.command} #{h}, expected MESSAGE #{body.inspect}")
    check(f.body == body, "body #{f.body.inspect}, expected #{body.inspect}")
    check(h['destination'] == dest, "destination #{h['destination']}, expected #{dest}")
    check(h['redelivered'] == redelivered, "redelivered #{h['redelivered'].inspect} on #{h}")
    f
  end

  # Bytes the kernel holds for the socket, not counting what Ruby's IO buffer already read.
  def kernel_pending
    io = IO.for_fd(@conn.instance_variable_get(:@socket).fileno, autoclose: false)
    io.nread
  end

  def run(passed)
    name = "interop-rubystomp-#{Process.pid}-#{SecureRandom.hex(4)}"
    q = "/queue/#{name}"
    pair = "/queue/#{name}-pair"
    topic = "/topic/#{name}"

    c = @conn.connection_frame
    check(c&.command == 'CONNECTED' && @conn.protocol == '1.2', "CONNECT: #{c&.command} #{c&.headers}")
    passed << 'connect'

    @conn.subscribe(q, { ack: 'client-individual', receipt: 'sub-q' }, 'q')
    expect_receipt('sub-q')
    passed << 'subscribe'

    @conn.publish(q, 'first', { 'x-interop' => 'custom value 1' })
    passed << 'send'
    first = expect_message('first', q, 'false')
    fail!("custom header: #{first.headers}") unless first.headers['x-interop'] == 'custom value 1'
    fail!("x-delivery-count: #{first.headers}") unless first.headers['x-delivery-count'] == '0'
    passed << 'receive'
    @conn.ack(first.headers['ack'])
    passed << 'ack'

    @conn.publish(q, 'second', { 'x-interop' => 'custom value 2', receipt: 'send-2' })
    # The MESSAGE and the RECEIPT may come in either order.
    got = [next_frame('RECEIPT send-2'), next_frame("MESSAGE 'second'")]
    receipts = got.select { |f| f.command == 'RECEIPT' }
    check(receipts.size == 1 && receipts[0].headers['receipt-id'] == 'send-2',
          "no RECEIPT send-2 in #{got.map(&:command)}")
    passed << 'receipt'
    @pending.unshift(*got.reject { |f| f.command == 'RECEIPT' })
    second = expect_message('second', q, 'false')
    @conn.nack(second.headers['ack'])
    again = expect_message('second', q, 'true')
    check(again.headers['message-id'] == second.headers['message-id'] &&
          again.headers['x-delivery-count'] == '1' &&
          again.headers['x-interop'] == 'custom value 2', "redelivery: #{again.headers}")
    @conn.ack(again.headers['ack'], receipt: 'ack-2')
    expect_receipt('ack-2')
    passed << 'nack'

    # Two MESSAGEs from one read: the queue holds both when the subscription starts; wait a
    # moment so that both are in the socket before the gem reads.
    @conn.publish(pair, 'pair-1', { 'x-interop' => 'p1' })
    @conn.publish(pair, 'pair-2', { 'x-interop' => 'p2', receipt: 'pair' })
    expect_receipt('pair')
    @conn.subscribe(pair, { ack: 'client-individual' }, 'pair')
    sleep 0.5
    p1 = expect_message('pair-1', pair, 'false')
    left = kernel_pending
    fail!("#{left} bytes still unread by the gem after the first of two frames") unless left.zero?
    p2 = expect_message('pair-2', pair, 'false')
    fail!("pair headers") unless p1.headers['x-interop'] == 'p1' && p2.headers['x-interop'] == 'p2'
    @conn.ack(p1.headers['ack'])
    @conn.ack(p2.headers['ack'])
    passed << 'two-frames-in-one-read'

    @conn.subscribe(topic, { receipt: 'sub-t' }, 't')
    expect_receipt('sub-t')
    @conn.publish(topic, 'to the topic', { 'x-interop' => 'topic value' })
    t = expect_message('to the topic', topic, nil)
    fail!("topic header: #{t.headers}") unless t.headers['x-interop'] == 'topic value'
    passed << 'topic'

    fail!("frames left: #{@pending.map(&:command)}") unless @pending.empty?
    Timeout.timeout(WAIT_S) { @conn.disconnect(receipt: 'bye') }
    r = @conn.disconnect_receipt
    check(r&.command == 'RECEIPT' && r.headers['receipt-id'] == 'bye',
          "DISCONNECT receipt: #{r&.command} #{r&.headers}")
    fail!('the connection is not closed') unless @conn.closed?
    passed << 'disconnect'
  end
end

started = Time.now
pid = nil
begin
  pid, port = start_server
  passed = []
  Run.new(port).run(passed)
  missing = CAPABILITIES - passed
  fail!("not exercised: #{missing.join(' ')}") unless missing.empty?
  puts format('Ruby stomp %s (STOMP 1.2): pass %s [%.1f s]', Stomp::Version::STRING,
              CAPABILITIES.select { |c| passed.include?(c) }.join(' '), Time.now - started)
rescue Failure, Timeout::Error, Stomp::Error::StompServerError => e
  warn "ruby_stomp_roundtrip: #{e.class}: #{e.message}"
  exit 1
ensure
  if pid
    Process.kill('KILL', pid)
    Process.wait(pid)
  end
end
