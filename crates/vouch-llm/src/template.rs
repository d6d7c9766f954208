//! The chat template: the GGUF's own Jinja template (`tokenizer.chat_template`) rendered with
//! `minijinja`, configured the way Hugging Face's `apply_chat_template` runs Jinja
//! (`trim_blocks`, `lstrip_blocks`, Python string methods through `minijinja-contrib`'s
//! pycompat, `raise_exception`). A GGUF without a template gets ChatML ([`CHATML`]), the
//! format most small instruction models use; the facts say `chat_template: null` so a caller
//! can tell.

use minijinja::{Environment, Error as JinjaError, ErrorKind, context};
use serde::{Deserialize, Serialize};

use crate::error::TemplateError;

/// The fallback for a GGUF without `tokenizer.chat_template`.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One chat message, as templates see it (`message['role']`, `message['content']`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The source, for the facts and for replay.
    pub source: String,
    /// True when the GGUF had no template and [`CHATML`] is used.
    pub is_fallback: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("is_fallback", &self.is_fallback)
            .finish_non_exhaustive()
    }
}

fn raise_exception(message: String) -> Result<String, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `source`, or the ChatML fallback when `None`.
    pub fn new(source: Option<&str>) -> Result<Self, TemplateError> {
        let (source, is_fallback) = match source {
            Some(s) => (s.to_string(), false),
            None => (CHATML.to_string(), true),
        };
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.clone())
            .map_err(|e| TemplateError::Compile(format!("{e:#}")))?;
        Ok(Self {
            env,
            source,
            is_fallback,
        })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// answer begins.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Compile(format!("{e:#}")))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
            })
            .map_err(|e| TemplateError::Render(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_fallback_renders_roles_and_generation_prompt() {
        let t = ChatTemplate::new(None).unwrap();
        assert!(t.is_fallback);
        let text = t
            .render(
                &[
                    Message::new(Role::System, "Be brief."),
                    Message::new(Role::User, "Hi"),
                ],
                true,
                "",
                "",
            )
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let t = ChatTemplate::new(Some(
            "{% if messages[0]['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}{{ messages[0]['content'].strip().upper() }}",
        ))
        .unwrap();
        assert_eq!(
            t.render(&[Message::new(Role::User, "  hi ")], false, "", "")
                .unwrap(),
            "HI"
        );
        let err = t
            .render(&[Message::new(Role::Tool, "x")], false, "", "")
            .unwrap_err();
        assert!(err.to_string().contains("no tools"), "{err}");
    }

    #[test]
    fn a_template_that_does_not_compile_is_refused() {
        assert!(matches!(
            ChatTemplate::new(Some("{% for %}")),
            Err(TemplateError::Compile(_))
        ));
    }
}
