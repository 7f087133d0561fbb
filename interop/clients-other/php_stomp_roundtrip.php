<?php
// Interop: PHP's PECL stomp extension (Debian `php-stomp`) round trips against `stompbox`.
//
// The extension passes CONNECT headers through, so this negotiates STOMP 1.2 (accept-version:1.2,
// host:/); it does not show the CONNECTED frame, so 1.2 is checked by the MESSAGE's `ack` header
// (sent to 1.2 sessions only). Stomp::ack()/nack() given a StompFrame copy all its headers (the
// MESSAGE's message-id, subscription, ack, ...); in 1.2 the server identifies the delivery by
// `id` (the MESSAGE's `ack` header), passed as an extra header. A `receipt` header makes send,
// subscribe and ack wait for the RECEIPT (frames that come first are kept for readFrame).
// Stomp has no disconnect method: its destructor sends DISCONNECT without headers and closes the
// socket; the DISCONNECT with a receipt is sent as a StompFrame through Stomp::send(), which uses
// the frame's command (and adds a destination header).
//
// The extension's reader takes the byte after each NUL for the frame's EOL (and fails on
// content-length frames whose NUL is not followed by "\n"), so it needs the server's EOL after
// each NUL; a bare heart-beat EOL would also derail it, and it sends no heart-beat header.
//
// Checks: CONNECT, a client-individual queue subscription, SEND with a custom header, MESSAGE
// (body, header, destination, redelivered:false), ACK, SEND with a receipt, NACK and redelivery
// (redelivered:true), two MESSAGEs from one read (both are in the socket before the extension's
// 4 KiB recv), a topic round trip, DISCONNECT with a receipt. The binary is $STOMPBOX_BIN, else
// <repo>/target/debug/stompbox; $INTEROP_STOMPBOX_ARGS is appended to its command line. Every wait
// is bounded; exits non-zero on failure.

const WAIT_S = 15;
const CAPABILITIES = ['connect', 'subscribe', 'send', 'receive', 'ack', 'nack', 'receipt',
    'two-frames-in-one-read', 'topic', 'disconnect'];

class Failure extends Exception {}

function fail(string $text): never { throw new Failure($text); }

$started = microtime(true);
$server = null;
$log = null;

// Starts stompbox with stderr to a temporary file; returns its TCP port.
function start_server(): int {
    global $server, $log;
    $root = dirname(__DIR__, 2);
    $bin = getenv('STOMPBOX_BIN') ?: "$root/target/debug/stompbox";
    $log = tempnam(sys_get_temp_dir(), 'stompbox-interop');
    $env = [];
    foreach (getenv() as $k => $v) {
        if (!str_starts_with($k, 'STOMPBOX_')) $env[$k] = $v;
    }
    $env['RUST_LOG'] = 'info';
    $extra = preg_split('/\s+/', trim((string)getenv('INTEROP_STOMPBOX_ARGS')), -1,
        PREG_SPLIT_NO_EMPTY);
    $cmd = array_merge([$bin, '--ws-listen', '127.0.0.1:0', '--tcp-listen', '127.0.0.1:0'], $extra);
    $server = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'],
        2 => ['file', $log, 'w']], $pipes, null, $env);
    if (!$server) fail("cannot start $bin");
    $deadline = microtime(true) + WAIT_S;
    while (microtime(true) < $deadline) {
        $text = (string)file_get_contents($log);
        if (preg_match('/listening websocket=\S+ tcp=\S+:(\d+)/', $text, $m)) return (int)$m[1];
        if (!proc_get_status($server)['running']) fail("stompbox exited: $text");
        usleep(50000);
    }
    fail('stompbox did not print its listening line within ' . WAIT_S . ' s');
}

function stop_server(): void {
    global $server, $log;
    if ($server) {
        proc_terminate($server, 9);
        proc_close($server);
        $server = null;
    }
    if ($log) @unlink($log);
}

function next_frame(Stomp $stomp, array &$pending, string $what): StompFrame {
    if ($pending) return array_shift($pending);
    $f = $stomp->readFrame();
    if (!$f) fail("no $what within " . WAIT_S . ' s (' . $stomp->error() . ')');
    return $f;
}

function expect_message(Stomp $stomp, array &$pending, string $body, string $dest,
                        ?string $redelivered): StompFrame {
    $f = next_frame($stomp, $pending, "MESSAGE '$body'");
    $h = $f->headers;
    if ($f->command !== 'MESSAGE') fail("$f->command " . json_encode($h) . ", expected '$body'");
    if ($f->body !== $body) fail("body " . var_export($f->body, true) . ", expected '$body'");
    if (($h['destination'] ?? null) !== $dest) fail("destination " . json_encode($h));
    if (($h['redelivered'] ?? null) !== $redelivered) fail("redelivered " . json_encode($h));
    return $f;
}

function run(int $port, array &$passed): void {
    $name = 'interop-phpstomp-' . getmypid() . '-' . bin2hex(random_bytes(4));
    $q = "/queue/$name";
    $pair = "/queue/$name-pair";
    $topic = "/topic/$name";
    $pending = [];

    $stomp = new Stomp("tcp://127.0.0.1:$port", 'guest', 'guest',
        ['accept-version' => '1.2', 'host' => '/']);
    $stomp->setReadTimeout(WAIT_S);
    if (!$stomp->getSessionId()) fail('no session id in CONNECTED');
    $passed[] = 'connect';

    if (!$stomp->subscribe($q, ['id' => 'q', 'ack' => 'client-individual', 'receipt' => 'sub-q']))
        fail('SUBSCRIBE receipt: ' . $stomp->error());
    $passed[] = 'subscribe';

    if (!$stomp->send($q, 'first', ['x-interop' => 'custom value 1']))
        fail('SEND: ' . $stomp->error());
    $passed[] = 'send';
    $first = expect_message($stomp, $pending, 'first', $q, 'false');
    $h = $first->headers;
    if (($h['x-interop'] ?? null) !== 'custom value 1') fail('custom header: ' . json_encode($h));
    if (($h['x-delivery-count'] ?? null) !== '0') fail('x-delivery-count: ' . json_encode($h));
    if (!isset($h['ack'])) fail('no ack header: not a STOMP 1.2 session? ' . json_encode($h));
    $passed[] = 'receive';
    $stomp->ack($first, ['id' => $h['ack']]);
    $passed[] = 'ack';

    // The MESSAGE may come before the RECEIPT: the extension keeps it for readFrame.
    if (!$stomp->send($q, 'second', ['x-interop' => 'custom value 2', 'receipt' => 'send-2']))
        fail('SEND receipt: ' . $stomp->error());
    $passed[] = 'receipt';
    $second = expect_message($stomp, $pending, 'second', $q, 'false');
    $stomp->nack($second, ['id' => $second->headers['ack']]);
    $again = expect_message($stomp, $pending, 'second', $q, 'true');
    $h = $again->headers;
    if ($h['message-id'] !== $second->headers['message-id'] || $h['x-delivery-count'] !== '1'
        || $h['x-interop'] !== 'custom value 2') fail('redelivery: ' . json_encode($h));
    if (!$stomp->ack($again, ['id' => $h['ack'], 'receipt' => 'ack-2']))
        fail('ACK receipt: ' . $stomp->error());
    $passed[] = 'nack';

    // Two MESSAGEs from one read: the queue holds both when the subscription starts; wait a
    // moment so that both are in the socket before the extension reads.
    $stomp->send($pair, 'pair-1', ['x-interop' => 'p1']);
    if (!$stomp->send($pair, 'pair-2', ['x-interop' => 'p2', 'receipt' => 'pair']))
        fail('pair receipt: ' . $stomp->error());
    $stomp->subscribe($pair, ['id' => 'pair', 'ack' => 'client-individual']);
    usleep(500000);
    $p1 = expect_message($stomp, $pending, 'pair-1', $pair, 'false');
    $p2 = expect_message($stomp, $pending, 'pair-2', $pair, 'false');
    if ($p1->headers['x-interop'] !== 'p1' || $p2->headers['x-interop'] !== 'p2')
        fail('pair headers');
    $stomp->ack($p1, ['id' => $p1->headers['ack']]);
    $stomp->ack($p2, ['id' => $p2->headers['ack']]);
    $passed[] = 'two-frames-in-one-read';

    // The extension makes every subscription `ack:client` unless told otherwise.
    if (!$stomp->subscribe($topic, ['id' => 't', 'ack' => 'auto', 'receipt' => 'sub-t']))
        fail('topic SUBSCRIBE receipt: ' . $stomp->error());
    $stomp->send($topic, 'to the topic', ['x-interop' => 'topic value']);
    $t = expect_message($stomp, $pending, 'to the topic', $topic, null);
    if ($t->headers['x-interop'] !== 'topic value')
        fail('topic header: ' . json_encode($t->headers));
    $passed[] = 'topic';

    if ($pending) fail('frames left');
    if (!$stomp->send($topic, new StompFrame('DISCONNECT', ['receipt' => 'bye'])))
        fail('DISCONNECT receipt: ' . $stomp->error());
    try {
        $after = $stomp->readFrame();
    } catch (StompException $e) {
        $after = false;
    }
    if ($after) fail("a frame after the DISCONNECT receipt: $after->command");
    if (!str_contains((string)$stomp->error(), 'closed'))
        fail('the server did not close the connection: ' . $stomp->error());
    $passed[] = 'disconnect';
}

$passed = [];
$status = 0;
try {
    $port = start_server();
    run($port, $passed);
    $missing = array_diff(CAPABILITIES, $passed);
    if ($missing) fail('not exercised: ' . implode(' ', $missing));
    printf("PHP stomp %s (PHP %s, STOMP 1.2): pass %s [%.1f s]\n", phpversion('stomp'),
        PHP_VERSION, implode(' ', array_values(array_intersect(CAPABILITIES, $passed))),
        microtime(true) - $started);
} catch (Throwable $e) {
    fwrite(STDERR, 'php_stomp_roundtrip: ' . get_class($e) . ': ' . $e->getMessage() . "\n");
    $status = 1;
} finally {
    stop_server();
}
exit($status);
