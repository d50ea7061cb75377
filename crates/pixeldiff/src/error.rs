//! The one error type of this crate.

/// Why an image could not be decoded, compared or encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// The bytes are not a PNG image this crate can read (bad signature, truncated or corrupt data).
    #[error("not a readable PNG image")]
    Decode(#[source] png::DecodingError),

    /// The image is larger than the configured pixel limit. Checked on the PNG header, before any
    /// pixel buffer is allocated, so a small file that claims a huge size cannot exhaust memory.
    #[error("image is {width}x{height} pixels, more than the limit of {limit} pixels")]
    TooLarge {
        /// Width claimed by the image.
        width: u32,
        /// Height claimed by the image.
        height: u32,
        /// The pixel limit in force.
        limit: u64,
    },

    /// The image has no pixels (a zero width or height).
    #[error("image has no pixels ({width}x{height})")]
    Empty {
        /// Width of the image.
        width: u32,
        /// Height of the image.
        height: u32,
    },

    /// A raw pixel buffer does not have the length its dimensions require.
    #[error("pixel buffer has {actual} bytes, {width}x{height} needs {expected}")]
    BufferSize {
        /// Width of the image.
        width: u32,
        /// Height of the image.
        height: u32,
        /// Required length in bytes.
        expected: usize,
        /// Actual length in bytes.
        actual: usize,
    },

    /// The PNG uses a pixel format this crate does not handle after expansion to 8 bits.
    #[error("unsupported PNG pixel format: {0}")]
    Unsupported(String),

    /// The PNG encoder failed (only possible on allocation failure or an internal bug).
    #[error("could not encode PNG")]
    Encode(#[source] png::EncodingError),

    /// One of the two inputs of [`crate::compare_png`] could not be used; `source` says why.
    #[error("cannot use the {role} image")]
    Input {
        /// `"baseline"` or `"current"`.
        role: &'static str,
        /// What is wrong with it.
        #[source]
        source: Box<DiffError>,
    },

    /// An option is outside its valid range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// Name of the option.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

impl From<png::DecodingError> for DiffError {
    fn from(err: png::DecodingError) -> Self {
        Self::Decode(err)
    }
}

impl From<png::EncodingError> for DiffError {
    fn from(err: png::EncodingError) -> Self {
        Self::Encode(err)
    }
}
