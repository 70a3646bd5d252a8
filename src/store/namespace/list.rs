//! `list`: pages of keys in byte order under a prefix, with the cursor production gives.

use super::*;

/// A cursor is the base64 of the last key returned; the next page starts strictly after it.
pub(super) fn decode_cursor(cursor: &str) -> Option<Vec<u8>> {
    BASE64.decode(cursor).ok()
}

impl Namespace {
    /// Lists keys in UTF-8 byte order: up to `limit` (0 or less: 1000) keys starting with
    /// `prefix`, after `cursor`. Never reads values; expired keys are skipped and reclaimed.
    pub async fn list_async(
        &self,
        prefix: &str,
        limit: i32,
        cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<ListPage> {
        let limit = validate_list(limit, prefix)?;
        let limit = self.page_cap.map_or(limit, |cap| limit.min(cap));
        let Some(location) = &self.location else {
            return self.list_page(prefix, limit, cursor, now_ms).await;
        };
        let query = PageQuery {
            prefix: prefix.to_owned(),
            limit,
            cursor: cursor.map(str::to_owned),
        };
        if let Some(page) = location.page(&query, now_ms) {
            let cache_status = Some(CacheStatus::Hit);
            return Ok(ListPage {
                cache_status,
                ..page
            });
        }
        let ticket = location.ticket();
        let page = self.list_page(prefix, limit, cursor, now_ms).await?;
        location.remember_page(query, &page, now_ms, ticket);
        let cache_status = Some(CacheStatus::Miss);
        Ok(ListPage {
            cache_status,
            ..page
        })
    }

    // One `list` page, read from the store.
    pub(super) async fn list_page(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<ListPage> {
        let after = match cursor.map(decode_cursor) {
            // A cursor we never made points nowhere: the list is over.
            Some(None) => return Ok(ListPage::default()),
            Some(Some(after)) => Some(after),
            None => None,
        };
        let mut keys = Vec::new();
        let mut expired = Vec::new();
        let mut more = false;
        self.storage
            .scan(
                prefix.as_bytes(),
                after.as_deref(),
                limit + 1,
                &mut |key, expiration, metadata| {
                    if is_expired(expiration, now_ms) {
                        expired.push(key.to_vec());
                        return true;
                    }
                    if keys.len() == limit {
                        more = true;
                        return false;
                    }
                    keys.push(ListedKey {
                        name: Bytes::from(key),
                        expiration,
                        metadata: metadata.cloned(),
                    });
                    true
                },
            )
            .await?;
        if !expired.is_empty() {
            let expired: Vec<&[u8]> = expired.iter().map(Vec::as_slice).collect();
            self.storage.delete_expired(&expired, now_ms).await?;
        }
        let cursor = match keys.last() {
            Some(last) if more => Some(BASE64.encode(&last.name)),
            _ => None,
        };
        Ok(ListPage {
            keys,
            cursor,
            cache_status: None,
        })
    }
}
