#!/usr/bin/perl
# Interop: Perl Net::Stomp (Debian `libnet-stomp-perl`) round trips against the `stompbox` binary.
#
# Net::Stomp passes CONNECT headers through, so this negotiates STOMP 1.2 (accept-version:1.2,
# host:/). Its ack()/nack() always send the MESSAGE's `message-id` and take extra headers: in 1.2
# the server identifies the delivery by `id` (the MESSAGE's `ack` header), passed as such.
# Its disconnect() sends DISCONNECT without headers and closes the socket at once, so the
# DISCONNECT with a receipt is built with Net::Stomp::Frame and sent with send_frame().
#
# Checks: CONNECT, a client-individual queue subscription, SEND with a custom header, MESSAGE
# (body, header, destination, redelivered:false), ACK, SEND with a receipt, NACK and redelivery
# (redelivered:true), two MESSAGEs taken from one read (counted by wrapping Net::Stomp's
# _read_data), a topic round trip, DISCONNECT with a receipt. The binary is $STOMPBOX_BIN, else
# <repo>/target/debug/stompbox; $INTEROP_STOMPBOX_ARGS is appended to its command line. Every
# wait is bounded; exits non-zero on failure.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempfile);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Net::Stomp;
use Net::Stomp::Frame;

my $WAIT_S = 15;
my $root = dirname(dirname(dirname(abs_path($0))));
my $bin = $ENV{STOMPBOX_BIN} || "$root/target/debug/stompbox";
my $started = time;
my $server_pid;

sub fail { die "net_stomp_roundtrip: @_\n" }

END {
    local $?;    # waitpid would otherwise become the exit status
    if ($server_pid) {
        kill 'KILL', $server_pid;
        waitpid($server_pid, 0);
    }
}

# Starts stompbox with stderr to a temporary file; returns its TCP port from the listening line.
sub start_server {
    my ($log_fh, $log_path) = tempfile(UNLINK => 1);
    my @extra = split ' ', ($ENV{INTEROP_STOMPBOX_ARGS} // '');
    $server_pid = fork // fail("fork: $!");
    if ($server_pid == 0) {
        delete $ENV{$_} for grep { /^STOMPBOX_/ } keys %ENV;
        $ENV{RUST_LOG} = 'info';
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>&', $log_fh;
        no warnings 'exec';
        exec $bin, '--ws-listen', '127.0.0.1:0', '--tcp-listen', '127.0.0.1:0', @extra;
        print STDERR "exec $bin: $!\n";
        POSIX::_exit(127);
    }
    my $deadline = time + $WAIT_S;
    while (time < $deadline) {
        open my $in, '<', $log_path or fail("open $log_path: $!");
        local $/;
        my $text = <$in> // '';
        return $1 if $text =~ /listening websocket=\S+ tcp=\S+:(\d+)/;
        fail("stompbox exited: $text") if waitpid($server_pid, WNOHANG) == $server_pid;
        sleep 0.05;
    }
    fail("stompbox did not print its listening line within $WAIT_S s");
}

my %passed;
my %cannot;
my @CAPABILITIES = qw(connect subscribe send receive ack nack receipt two-frames-in-one-read
    topic disconnect);

my $port = start_server();
$SIG{ALRM} = sub { fail("the whole run took over 120 s") };
alarm 120;

# Count the socket reads Net::Stomp makes, to check that two frames came out of one.
my $reads = 0;
{
    no warnings 'redefine';
    my $read_data = \&Net::Stomp::_read_data;
    *Net::Stomp::_read_data = sub { $reads++; $read_data->(@_) };
}

my $name = "interop-netstomp-$$-" . int(rand(1e9));
my ($q, $pair, $topic) = ("/queue/$name", "/queue/$name-pair", "/topic/$name");
my $stomp = Net::Stomp->new({ hostname => '127.0.0.1', port => $port, timeout => $WAIT_S,
    reconnect_attempts => 1, initial_reconnect_attempts => 1 });
my @pending;    # frames read while waiting for another

sub next_frame {
    my ($what) = @_;
    return shift @pending if @pending;
    my $f = $stomp->receive_frame({ timeout => $WAIT_S });
    fail("no $what within $WAIT_S s") unless $f;
    fail("ERROR " . $f->as_string) if $f->command eq 'ERROR';
    return $f;
}

sub expect_receipt {
    my ($receipt) = @_;
    my $f = next_frame("RECEIPT $receipt");
    fail("got " . $f->as_string . " expected RECEIPT $receipt")
        unless $f->command eq 'RECEIPT' && $f->headers->{'receipt-id'} eq $receipt;
}

sub expect_message {
    my ($body, $dest, $redelivered) = @_;
    my $f = next_frame("MESSAGE '$body'");
    my $h = $f->headers;
    fail("got " . $f->as_string . " expected MESSAGE '$body'") unless $f->command eq 'MESSAGE';
    fail("body '" . ($f->body // '') . "' expected '$body'") unless ($f->body // '') eq $body;
    fail("destination $h->{destination} expected $dest") unless $h->{destination} eq $dest;
    fail("redelivered " . ($h->{redelivered} // 'none') . " expected " . ($redelivered // 'none'))
        unless ($h->{redelivered} // 'none') eq ($redelivered // 'none');
    return $f;
}

my $connected = $stomp->connect({ login => 'guest', passcode => 'guest',
    'accept-version' => '1.2', host => '/' });
fail("CONNECT: " . ($connected ? $connected->as_string : 'no answer'))
    unless $connected && $connected->command eq 'CONNECTED';
fail("version $connected->{headers}{version}") unless $connected->headers->{version} eq '1.2';
$passed{connect} = 1;

$stomp->subscribe({ destination => $q, id => 'q', ack => 'client-individual', receipt => 'sub-q' });
expect_receipt('sub-q');
$passed{subscribe} = 1;

$stomp->send({ destination => $q, body => 'first', 'x-interop' => 'custom value 1' });
$passed{send} = 1;
my $first = expect_message('first', $q, 'false');
fail("custom header: " . $first->as_string) unless $first->headers->{'x-interop'} eq 'custom value 1';
fail("x-delivery-count: " . $first->as_string) unless $first->headers->{'x-delivery-count'} eq '0';
$passed{receive} = 1;
$stomp->ack({ frame => $first, id => $first->headers->{ack} });
$passed{ack} = 1;

$stomp->send({ destination => $q, body => 'second', 'x-interop' => 'custom value 2',
    receipt => 'send-2' });
# The MESSAGE and the RECEIPT may come in either order.
my @got = (next_frame('RECEIPT send-2'), next_frame("MESSAGE 'second'"));
my @receipts = grep { $_->command eq 'RECEIPT' } @got;
fail("no RECEIPT send-2") unless @receipts == 1 && $receipts[0]->headers->{'receipt-id'} eq 'send-2';
$passed{receipt} = 1;
unshift @pending, grep { $_->command ne 'RECEIPT' } @got;
my $second = expect_message('second', $q, 'false');
$stomp->nack({ frame => $second, id => $second->headers->{ack} });
my $again = expect_message('second', $q, 'true');
fail("redelivery: " . $again->as_string)
    unless $again->headers->{'message-id'} eq $second->headers->{'message-id'}
    && $again->headers->{'x-delivery-count'} eq '1'
    && $again->headers->{'x-interop'} eq 'custom value 2';
$stomp->ack({ frame => $again, id => $again->headers->{ack}, receipt => 'ack-2' });
expect_receipt('ack-2');
$passed{nack} = 1;

# Two MESSAGEs from one read: the queue holds both when the subscription starts; wait a moment
# so that both are in the socket before Net::Stomp reads.
$stomp->send({ destination => $pair, body => 'pair-1', 'x-interop' => 'p1' });
$stomp->send_with_receipt({ destination => $pair, body => 'pair-2', 'x-interop' => 'p2' })
    or fail("send_with_receipt: no RECEIPT");
$stomp->subscribe({ destination => $pair, id => 'pair', ack => 'client-individual' });
sleep 0.5;
$reads = 0;
my $p1 = expect_message('pair-1', $pair, 'false');
my $p2 = expect_message('pair-2', $pair, 'false');
fail("the two MESSAGEs took $reads reads") unless $reads == 1;
fail("pair headers") unless $p1->headers->{'x-interop'} eq 'p1' && $p2->headers->{'x-interop'} eq 'p2';
$stomp->ack({ frame => $p1, id => $p1->headers->{ack} });
$stomp->ack({ frame => $p2, id => $p2->headers->{ack} });
$passed{'two-frames-in-one-read'} = 1;

$stomp->subscribe({ destination => $topic, id => 't', receipt => 'sub-t' });
expect_receipt('sub-t');
$stomp->send({ destination => $topic, body => 'to the topic', 'x-interop' => 'topic value' });
my $t = expect_message('to the topic', $topic, undef);
fail("topic header") unless $t->headers->{'x-interop'} eq 'topic value';
$passed{topic} = 1;

$stomp->send_frame(Net::Stomp::Frame->new({ command => 'DISCONNECT',
    headers => { receipt => 'bye' } }));
expect_receipt('bye');
fail("frames left: " . join(', ', map { $_->as_string } @pending)) if @pending;
fail("the server did not close the connection after DISCONNECT")
    if defined $stomp->receive_frame({ timeout => $WAIT_S });
$passed{disconnect} = 1;
alarm 0;

my @missing = grep { !$passed{$_} && !$cannot{$_} } @CAPABILITIES;
fail("not exercised: @missing") if @missing;
printf "Net::Stomp %s (STOMP 1.2): pass %s [%.1f s]\n", $Net::Stomp::VERSION,
    join(' ', grep { $passed{$_} } @CAPABILITIES), time - $started;
