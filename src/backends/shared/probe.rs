//! Probing a store's socket before trusting it: whether a holder serves the store there.

use super::*;

/// Connects to the socket at `path` within [`PROBE_WAIT`]: a blocking connect to a holder
/// that is stopped with a full listen backlog would wait for as long as it stays stopped.
pub(super) fn connect_within(
    handle: &Handle,
    path: &Path,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    let connect = async {
        tokio::time::timeout(PROBE_WAIT, UnixStream::connect(path))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    };
    let stream = handle.block_on(connect)?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Why the holder of a store could not be reached: for the message of the store's
/// `ERR_KV_LOCKED`.
#[derive(Debug)]
pub enum Unreached {
    /// It may be reachable in a moment: it is starting, or handing the store over as it
    /// leaves. Worth trying again while the holder shares the store.
    Wait(String),
    /// It will not be: trying again changes nothing.
    Final(String),
}

/// What a file in place of the store's socket is, for messages.
pub(super) fn kind_of(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_symlink() {
        "symbolic link"
    } else {
        "regular file"
    }
}

/// Checks that the holder of `store` serves it: connects and says hello, naming the store.
pub fn probe(store: &Path) -> std::result::Result<(), Unreached> {
    use Unreached::{Final, Wait};
    let Some(handle) = runtime() else {
        return Err(Final("this build shares no store".into()));
    };
    let Some(id) = crate::backends::sled::read_store_id(store) else {
        return Err(Wait("its format file names no store id yet".into()));
    };
    let socket = store.join(SOCKET_FILE);
    match fs::symlink_metadata(&socket) {
        Err(_) => return Err(Wait(format!("it has no socket ({SOCKET_FILE}) yet"))),
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(Final(format!(
                "{} is a {}, not the socket the store is served on; remove it and open the \
                 store again",
                socket.display(),
                kind_of(&meta)
            )))
        }
        Ok(_) => {}
    }
    let connected = socket_path(store).and_then(|(path, _dir)| connect_within(handle, &path));
    let mut stream = match connected {
        Ok(stream) => stream,
        // A full backlog: at once on a non-blocking connect, or after the wait.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            return Err(Final(format!(
                "it accepted no connection within {} ms; is it stopped?",
                PROBE_WAIT.as_millis()
            )))
        }
        Err(e) => return Err(Wait(format!("its socket accepted no connection ({e})"))),
    };
    if !same_user(&stream) {
        return Err(Final("it runs as another user".into()));
    }
    let mut talk = || -> std::io::Result<Option<Response>> {
        stream.set_read_timeout(Some(PROBE_WAIT))?;
        stream.set_write_timeout(Some(PROBE_WAIT))?;
        let hello = wire::encode(&Request::Hello {
            protocol: PROTOCOL,
            store: id,
        })
        .map_err(std::io::Error::other)?;
        stream.write_all(&hello)?;
        let mut header = [0; 4];
        stream.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header) as usize;
        if len > HELLO_MAX {
            return Ok(None);
        }
        let mut body = vec![0; len];
        stream.read_exact(&mut body)?;
        Ok(postcard::from_bytes(&body).ok())
    };
    match talk() {
        Ok(Some(Response::Hello {
            protocol: PROTOCOL,
            store,
            ..
        })) if store == id => Ok(()),
        Ok(Some(Response::Hello {
            protocol: PROTOCOL,
            store,
            ..
        })) => Err(Final(format!(
            "the socket in its directory is served by the holder of another store (id \
             {store:016x}, not {id:016x})"
        ))),
        Ok(_) => Err(Final(
            "it speaks another version of the store protocol".into(),
        )),
        // Connected and not answered: stopped, or busy beyond reason.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            Err(Final(format!(
                "it did not answer on {} within {} ms; is it stopped?",
                socket.display(),
                PROBE_WAIT.as_millis()
            )))
        }
        // The connection ended: a holder leaving.
        Err(e) => Err(Wait(format!(
            "it did not answer on {} ({e})",
            socket.display()
        ))),
    }
}
