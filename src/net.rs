//! The client port: accepting connections, the handshake, the read loop that
//! turns frames into requests, and the write loop that sends replies and
//! notifications in the order the core queued them.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use canopy_protocol::{
    ConnectRequest, DecodeError, ErrorCode, FrameCodec, FrameError, Id, Jute, Request,
    RequestHeader,
};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::core::{Action, ConnId, Core, Handshake, Outbound};
use crate::fourlw;
use crate::metrics::Metrics;
use crate::outbound::{self, OutboundReceiver, OutboundSender, Taken};
use crate::storage::wal::LogFlusher;
use crate::stream::{ConnReader, ConnWriter};

/// Accepts connections on the client port until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, core: Arc<Mutex<Core>>, shutdown: CancellationToken) {
    accept_loop(
        listener,
        core,
        shutdown,
        "client port",
        |core, socket, addr| async move {
            let _ = socket.set_nodelay(true);
            let (reader, writer) = socket.into_split();
            handle_connection(core, reader, writer, addr, Vec::new()).await;
        },
    )
    .await;
}

/// Accepts connections until `shutdown` is cancelled and runs `serve_one` for
/// each that the access lists and connection limits admit (a refused socket
/// is dropped before a byte is read). The admission is held until
/// `serve_one` ends, so the connection keeps its place in the limits.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    core: Arc<Mutex<Core>>,
    shutdown: CancellationToken,
    port: &'static str,
    serve_one: F,
) where
    F: Fn(Arc<Mutex<Core>>, TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let access = core.lock().access.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, addr)) => {
                let admission = match access.admit(addr.ip()) {
                    Ok(admission) => admission,
                    Err(refusal) => {
                        tracing::warn!(%addr, port, reason = refusal.label(), "connection refused");
                        continue;
                    }
                };
                let connection = serve_one(core.clone(), socket, addr);
                tokio::spawn(async move {
                    connection.await;
                    drop(admission);
                });
            }
            Err(err) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%err, port, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why a connection ended, for the log.
enum Ending {
    PeerClosed,
    Closed(String),
    /// An unknown opcode: answer its xid (when it could be read) with
    /// Unimplemented, then close.
    Unimplemented(Option<i32>, String),
}

/// Serves one connection, plain or TLS (the secure port hands over the
/// decrypted halves and the identities the TLS handshake proved).
pub async fn handle_connection<R: ConnReader, W: ConnWriter>(
    core: Arc<Mutex<Core>>,
    mut reader: R,
    writer: W,
    addr: SocketAddr,
    proven: Vec<Id>,
) {
    // Grown as bytes come; a silent connection holds next to nothing.
    let mut buf = BytesMut::new();

    let (max_frame, handshake_timeout, max_outbound, metrics, flusher) = {
        let core = core.lock();
        (
            core.config.max_frame_bytes,
            Duration::from_millis(core.config.handshake_timeout_ms.max(1)),
            core.config.max_outbound_bytes,
            core.metrics.clone(),
            core.log_flusher(),
        )
    };

    // One deadline for the whole handshake, however the bytes trickle in.
    let handshake_deadline = tokio::time::Instant::now() + handshake_timeout;
    // The first four bytes are either a frame length or a four-letter word.
    let first = tokio::time::timeout_at(handshake_deadline, async {
        while buf.len() < 4 {
            let read = reader.read_buf(&mut buf).await?;
            if read == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            metrics.add_received(read);
        }
        Ok(true)
    })
    .await;
    match first {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) | Ok(Err(_)) => return,
        Err(_) => {
            tracing::info!(%addr, "closing connection: nothing received before the handshake timeout");
            return;
        }
    }
    if let Some(word) = fourlw::detect(&buf[..4]) {
        let answer = fourlw::answer(&core, word);
        let mut writer = writer;
        let _ = writer.write_all(answer.as_bytes()).await;
        let _ = writer.shutdown().await;
        return;
    }

    let (tx, rx) = outbound::channel(addr, max_outbound);
    let (conn_id, durable) = {
        let mut core = core.lock();
        let conn_id = core.register_conn(addr, tx.clone());
        if let Some(conn) = core.conns.get_mut(&conn_id) {
            conn.identities.extend(proven);
        }
        (conn_id, core.durable_zxid())
    };
    // Kept to tell a cut-off from other endings and to hold requests back
    // while replies pile up; dropped before waiting for the write loop.
    let out = tx;
    let stop = CancellationToken::new();
    let writer_task = tokio::spawn(write_loop(writer, rx, durable, stop.clone()));

    let ending = read_loop(
        &core,
        &flusher,
        conn_id,
        &mut reader,
        &mut buf,
        &out,
        max_frame,
        handshake_deadline,
        &stop,
        &metrics,
    )
    .await;
    match &ending {
        Ending::PeerClosed => tracing::debug!(%addr, "connection closed by client"),
        // Already logged, with its figures, when it was cut off.
        Ending::Closed(_) if out.is_cut_off() => {}
        Ending::Closed(reason) | Ending::Unimplemented(_, reason) => {
            tracing::info!(%addr, "closing connection: {reason}")
        }
    }
    if let Ending::Closed(reason) | Ending::Unimplemented(_, reason) = ending {
        if let Some(conn) = core.lock().conns.get(&conn_id) {
            conn.out.send(Outbound::Close(reason));
        }
    }
    core.lock().unregister_conn(conn_id);
    // The write loop ends once no sender is left.
    drop(out);
    let _ = writer_task.await;
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    core: &Arc<Mutex<Core>>,
    flusher: &LogFlusher,
    conn_id: ConnId,
    reader: &mut impl ConnReader,
    buf: &mut BytesMut,
    out: &OutboundSender,
    max_frame: usize,
    handshake_deadline: tokio::time::Instant,
    stop: &CancellationToken,
    metrics: &Metrics,
) -> Ending {
    let mut codec = FrameCodec::new(max_frame);
    let mut attached = false;
    // The requests of one read, run under one hold of the lock unless the
    // replies back up.
    let mut batch: VecDeque<(RequestHeader, Request)> = VecDeque::new();
    loop {
        // A connection cut off (or closed) by the server runs none of the
        // requests it still has buffered.
        if stop.is_cancelled() {
            return closed_by_server(out);
        }
        // Set when a frame ends the connection: the requests before it still run.
        let mut ending = None;
        loop {
            let len = match next_frame(&mut codec, buf) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(err) => {
                    ending = Some(Ending::Closed(format!("bad frame: {err}")));
                    break;
                }
            };
            // Decoded in place (the request copies what it keeps), then
            // dropped from the buffer.
            let frame = &buf[4..4 + len];
            if !attached {
                let request = ConnectRequest::from_bytes(frame);
                buf.advance(4 + len);
                let request = match request {
                    Ok(request) => request,
                    Err(err) => return Ending::Closed(format!("malformed connect request: {err}")),
                };
                match core.lock().connect(conn_id, &request) {
                    Handshake::Attached => attached = true,
                    Handshake::Refused(reason) | Handshake::Dropped(reason) => {
                        return Ending::Closed(reason)
                    }
                }
                continue;
            }
            let decoded = match Request::decode_frame(frame) {
                Ok(decoded) => Ok(decoded),
                Err(err @ DecodeError::UnknownOpCode(_)) => {
                    // As ZooKeeper's UnimplementedRequestProcessor: answer the
                    // xid with Unimplemented (after the requests before it),
                    // then close.
                    let xid = RequestHeader::decode(frame).ok().map(|(_, h)| h.xid);
                    Err(Ending::Unimplemented(
                        xid,
                        format!("malformed request: {err}"),
                    ))
                }
                Err(err) => Err(Ending::Closed(format!("malformed request: {err}"))),
            };
            buf.advance(4 + len);
            match decoded {
                Ok(decoded) => batch.push_back(decoded),
                Err(end) => {
                    ending = Some(end);
                    break;
                }
            }
        }
        while !batch.is_empty() {
            if out.is_backed_up() {
                // Replies go out slower than this client asks for them (or
                // wait for the log): hold its requests, as ZooKeeper stops
                // reading from a connection with too much outstanding.
                tokio::select! {
                    _ = stop.cancelled() => return closed_by_server(out),
                    _ = out.drained() => {}
                }
                // A cut-off queue stays over the mark: without this the loop
                // would spin until the write loop cancels `stop`.
                if out.is_cut_off() {
                    return Ending::Closed("cut off for not reading".into());
                }
                continue;
            }
            // Dropped after the lock (declared before it): the changes the
            // batch logged are flushed, or handed to the log writer, once
            // the core is free for other connections.
            let _flush = flusher.defer();
            let mut core = core.lock();
            // Checked before each request: the one that backs the queue up
            // is the last to run under this hold.
            let until_backed_up = std::iter::from_fn(|| {
                if out.is_backed_up() {
                    None
                } else {
                    batch.pop_front()
                }
            });
            if let Action::Close(reason) = core.process_batch(conn_id, until_backed_up) {
                return Ending::Closed(reason);
            }
        }
        match ending {
            None => {}
            Some(Ending::Unimplemented(xid, reason)) => {
                if let Some(xid) = xid {
                    let _flush = flusher.defer();
                    core.lock()
                        .reply_error(conn_id, xid, ErrorCode::Unimplemented);
                }
                return Ending::Closed(reason);
            }
            Some(ending) => return ending,
        }
        let read = tokio::select! {
            _ = stop.cancelled() => return closed_by_server(out),
            _ = tokio::time::sleep_until(handshake_deadline), if !attached => {
                return Ending::Closed("no handshake before the timeout".into())
            }
            read = read_some(reader, buf) => read,
        };
        match read {
            Ok(0) => return Ending::PeerClosed,
            Ok(read) => metrics.add_received(read),
            Err(err) => return Ending::Closed(format!("read failed: {err}")),
        }
    }
}

/// The ending of a connection the server closed (a session re-attached
/// elsewhere or expired, a shutdown), with the reason given for it.
fn closed_by_server(out: &OutboundSender) -> Ending {
    let reason = out.close_reason();
    Ending::Closed(reason.unwrap_or_else(|| "closed by the server".into()))
}

/// The length of the complete frame at the start of `buf`, if there is one
/// (its body follows the 4-byte prefix). Anything else (a partial or refused
/// frame) is left to the codec, which reserves room or says why.
fn next_frame(codec: &mut FrameCodec, buf: &mut BytesMut) -> Result<Option<usize>, FrameError> {
    if let Some(prefix) = buf.get(..4) {
        let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if let Ok(len) = usize::try_from(len) {
            if len <= codec.max_frame() && buf.len() >= 4 + len {
                return Ok(Some(len));
            }
        }
    }
    // Incomplete or refused: the codec never returns a frame here.
    codec.decode(buf).map(|_| None)
}

/// Reads what the connection has into `buf`. A busy connection keeps its
/// buffer from one read to the next; an empty one is given back before
/// waiting, so an idle connection holds no read buffer.
async fn read_some(reader: &mut impl ConnReader, buf: &mut BytesMut) -> std::io::Result<usize> {
    if let Some(read) = reader.try_read_some(buf) {
        return read;
    }
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = BytesMut::new();
    }
    reader.read_some(buf).await
}

/// Writes queued frames in order, taking whatever is queued at once and
/// writing it with as few writes as the log allows: a run of frames that
/// depends on a change not yet on disk waits for the log (what is before it
/// is written first). Ends on a Close (after writing what came before it),
/// when every sender is gone, or at once when the connection is cut off for
/// not reading; it then tells the read loop to stop.
async fn write_loop(
    mut writer: impl ConnWriter,
    mut rx: OutboundReceiver,
    mut durable: watch::Receiver<i64>,
    stop: CancellationToken,
) {
    // Every wait below (a full socket, the log) ends when the connection is
    // cut off for not reading.
    let cut_off = rx.cut_off();
    let sent = async {
        let mut taken = Taken::default();
        while rx.recv(&mut taken).await {
            let mut from = 0;
            let mut run_start = 0;
            for &(end, after) in &taken.runs {
                if *durable.borrow() < after {
                    if from < run_start {
                        if writer
                            .write_all(&taken.bytes[from..run_start])
                            .await
                            .is_err()
                        {
                            return;
                        }
                        rx.written(run_start - from);
                        from = run_start;
                    }
                    if durable.wait_for(|zxid| *zxid >= after).await.is_err() {
                        // The log writer is gone: the server is stopping.
                        return;
                    }
                }
                run_start = end;
            }
            if from < taken.bytes.len() {
                if writer.write_all(&taken.bytes[from..]).await.is_err() {
                    return;
                }
                rx.written(taken.bytes.len() - from);
            }
            if taken.close.is_some() {
                return;
            }
            taken.clear();
        }
    };
    let finished = tokio::select! {
        _ = sent => true,
        _ = cut_off.cancelled() => false,
    };
    if finished && !cut_off.is_cancelled() {
        let _ = writer.shutdown().await;
    } else {
        // The client does not read: reset the connection so the kernel drops
        // what it still holds for it too.
        writer.reset();
    }
    stop.cancel();
}
